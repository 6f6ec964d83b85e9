"""Connecting to the OpenAI Realtime API (GA) with the official SDK.

``create_realtime_api_client`` is what scenarios call as
``OpenAI.create_realtime_api_client``: it opens ``client.realtime.connect(model=...)``
(GA protocol), retries per :class:`~connectors.base.ConnectOptions`, waits for
``session.created`` and returns a :class:`~connectors.openai.client.RealtimeAPIClient`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import openai

from connectors.base import (
    ConnectOptions,
    ConnectorError,
    connect_with_retries,
    shared_sdk_client,
)
from connectors.openai.client import RealtimeAPIClient, _ws_log
from gateway.runtime.events import Event

log = logging.getLogger("connectors.openai.client")


def _status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _retryable(exc: BaseException) -> bool:
    """Network trouble, 408, 429 and 5xx are worth another attempt; the rest is not."""
    from websockets.exceptions import InvalidURI

    status = _status_of(exc)
    if status is not None:
        return status == 429 or status >= 500 or status == 408
    return not isinstance(exc, openai.OpenAIError | InvalidURI | ValueError | TypeError)


def _describe(exc: BaseException) -> str:
    status = _status_of(exc)
    if status is not None:
        what = " (authentication refused)" if status in (401, 403) else ""
        body = getattr(getattr(exc, "response", None), "body", None)
        text = (body.decode("utf-8", "replace").strip()[:200]
                if isinstance(body, bytes | bytearray) else "")
        return f"HTTP {status} on the WebSocket handshake{what}" + (f": {text}" if text else "")
    return f"{type(exc).__name__}: {exc}"


def _sdk_key(api_key: str | None, base_url: str | None,
             websocket_base_url: str | None) -> tuple[Any, ...]:
    """Cache key of an ``AsyncOpenAI``: the arguments and the environment the SDK reads."""
    return ("openai", api_key, base_url, websocket_base_url,
            os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL"))


async def create_realtime_api_client(
    api_key: str | None = None,
    model: str = "gpt-realtime",
    base_url: str | None = None,
    websocket_base_url: str | None = None,
    instructions: str | None = None,
    voice: str | None = None,
    tools: list[dict[str, Any]] | None = None,
    on_websocket_closed: Callable[[Event], Any] | None = None,
    connect_options: ConnectOptions | None = None,
    barge_in: bool = True,
    **session: Any,
) -> RealtimeAPIClient:
    """Connect to the OpenAI Realtime API (GA) and return a ready client.

    ``api_key`` and ``base_url`` left as None are read by the SDK from
    ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``; the WebSocket URL is derived from
    the base URL (``http`` -> ``ws``) unless ``websocket_base_url`` is given. The
    first server event (``session.created``) is awaited, then dispatched to the
    handlers the caller adds right after this returns.

    Args:
        api_key: OpenAI API key (never logged).
        model: Realtime model, e.g. ``"gpt-realtime"``.
        base_url: REST base URL, e.g. ``"https://api.openai.com/v1"``.
        websocket_base_url: explicit WebSocket base URL, e.g. ``"wss://.../v1"``.
        instructions: system instructions (``session.instructions``).
        voice: output voice (``session.audio.output.voice``), e.g. ``"marin"``.
        tools: GA function tools, ``[{"type": "function", "name": ..., "parameters": ...}]``.
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        connect_options: retries, backoff (s) and per-attempt timeout (s).
        barge_in: clear playout and truncate on user speech (default True).
        **session: further GA session fields for the first ``session.update``.

    Raises:
        ConnectorError: no API key, or no connection after the retries.
    """
    opts = connect_options or ConnectOptions()
    try:
        sdk = await shared_sdk_client(
            _sdk_key(api_key, base_url, websocket_base_url),
            lambda: openai.AsyncOpenAI(api_key=api_key, base_url=base_url,
                                       websocket_base_url=websocket_base_url))
    except openai.OpenAIError as exc:
        raise ConnectorError(f"openai: {exc}", vendor="openai") from None

    async def attempt() -> tuple[Any, dict[str, Any]]:
        manager = sdk.realtime.connect(
            model=model, websocket_connection_options={"logger": _ws_log}
        )
        conn = await manager.enter()
        try:
            first = json.loads(await conn.recv_bytes())
            if not isinstance(first, dict):
                raise ConnectorError("openai: unexpected first message", vendor="openai")
            if first.get("type") == "error":
                err = first.get("error") or {}
                raise ConnectorError(
                    f"openai: server refused the session: {err.get('code')}: {err.get('message')}",
                    vendor="openai",
                )
        except BaseException:
            try:
                await conn.close()
            except Exception as exc:
                log.debug("openai: close after failed start: %r", exc)
            raise
        return conn, first

    conn, first = await connect_with_retries(
        attempt, opts, vendor="openai", is_retryable=_retryable, describe=_describe
    )
    client = RealtimeAPIClient(
        conn,
        sdk_client=None,  # shared by every client with the same key and URLs
        model=model,
        barge_in=barge_in,
        on_websocket_closed=on_websocket_closed,
    )
    initial = copy.deepcopy(session)
    if instructions is not None:
        initial["instructions"] = instructions
    if voice is not None:
        audio = initial.setdefault("audio", {})
        audio.setdefault("output", {})["voice"] = voice
    if tools is not None:
        initial["tools"] = tools
    client.session_update(initial)
    client._start(first)
    return client
