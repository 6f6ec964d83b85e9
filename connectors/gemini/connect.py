"""Connecting to the Gemini Live API with the official ``google-genai`` SDK.

``create_live_api_client`` is what scenarios call as ``Gemini.create_live_api_client``:
it builds a ``LiveConnectConfig``, opens
``genai.Client(api_key=..., http_options=...).aio.live.connect(model=..., config=...)``
(the SDK sends ``setup`` and waits for ``setupComplete``), retries per
:class:`~connectors.base.ConnectOptions` and returns a running
:class:`~connectors.gemini.client.LiveAPIClient`.

The SDK always speaks ``wss`` when it has an API key (it rewrites the scheme of
``base_url``); it trusts ``SSL_CERT_FILE``/``SSL_CERT_DIR`` (read when the SDK
client is built) or an ``ssl.SSLContext`` given as
``http_options={"async_client_args": {"ssl": ctx}}``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

from connectors.base import (
    ConnectOptions,
    ConnectorError,
    connect_with_retries,
    shared_sdk_client,
)
from connectors.gemini.client import LiveAPIClient, _closed_by
from gateway.runtime.events import Event

log = logging.getLogger("connectors.gemini.client")

#: The default Live model.
DEFAULT_MODEL = "gemini-live-2.5-flash-preview"

#: WebSocket close codes a retry cannot fix (bad request, bad key, unsupported data).
_FINAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})

#: Environment values the SDK reads when a ``genai.Client`` is built.
_SDK_ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL",
            "GOOGLE_GENAI_USE_VERTEXAI", "SSL_CERT_FILE", "SSL_CERT_DIR")


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _retryable(exc: BaseException) -> bool:
    """Network trouble, 408/429/5xx and abnormal closes are worth another attempt."""
    import pydantic
    from websockets.exceptions import InvalidURI

    closed = _closed_by(exc)
    if closed is not None:
        return closed[0] not in _FINAL_CLOSE_CODES
    status = _http_status(exc)
    if status is not None:
        return status in (408, 429) or status >= 500
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    return not isinstance(exc, InvalidURI | ValueError | TypeError | pydantic.ValidationError)


def _describe(exc: BaseException) -> str:
    closed = _closed_by(exc)
    if closed is not None:
        code, reason = closed
        return f"WebSocket closed with code {code}" + (f": {reason}" if reason else "")
    status = _http_status(exc)
    if status is not None:
        return f"HTTP {status} on the WebSocket handshake"
    return f"{type(exc).__name__}: {exc}"




async def _sdk_client(api_key: str | None, base_url: str | None,
                      http_options: dict[str, Any] | Any | None) -> Any:
    """A ``genai.Client``, built off the event loop; shared per (event loop, key, URL,
    environment) when ``http_options`` is not given (see ``shared_sdk_client``).

    Raises:
        ConnectorError: no API key, or options the SDK refuses.
    """
    from google import genai

    opts: dict[str, Any]
    if http_options is None:
        opts = {}
    elif isinstance(http_options, dict):
        opts = dict(http_options)
    else:
        opts = http_options.model_dump(exclude_none=True)
    if base_url is not None:
        opts["base_url"] = base_url

    def build() -> Any:
        try:
            return genai.Client(api_key=api_key, http_options=opts or None)
        except (ValueError, TypeError) as exc:
            raise ConnectorError(f"gemini: {exc}", vendor="gemini") from None

    if http_options is not None:
        return await asyncio.to_thread(build)
    key = ("gemini", api_key, base_url, *(os.environ.get(name) for name in _SDK_ENV))
    return await shared_sdk_client(key, build)


def _function_tools(tools: list[Any]) -> list[Any]:
    """Gemini ``Tool`` objects from ``tools``.

    Gemini tools (``{"function_declarations": [...]}``, ``{"google_search": {}}``,
    SDK ``types.Tool``) pass through; bare function declarations
    (``{"name", "description", "parameters"}``, also the OpenAI shape with
    ``"type": "function"``) are gathered into one ``function_declarations`` tool, so
    a scenario can use the same tool list with every vendor.
    """
    out: list[Any] = []
    declarations: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, dict) and "name" in tool:
            decl = {k: v for k, v in tool.items() if k != "type"}
            if isinstance(decl.get("function"), dict):  # Chat Completions shape
                decl = dict(decl["function"])
            declarations.append(decl)
        else:
            out.append(tool)
    if declarations:
        out.append({"function_declarations": declarations})
    return out


def build_live_config(
    instructions: str | None = None,
    voice: str | None = None,
    tools: list[Any] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """The ``LiveConnectConfig`` fields (a dict) for a call.

    ``response_modalities`` defaults to ``["AUDIO"]``; ``instructions`` becomes
    ``system_instruction``, ``voice`` a prebuilt voice in ``speech_config``.

    Raises:
        ConnectorError: the SDK's ``LiveConnectConfig`` refuses the fields.
    """
    from google.genai import types

    cfg = copy.deepcopy(config)
    cfg.setdefault("response_modalities", ["AUDIO"])
    if instructions is not None:
        cfg["system_instruction"] = instructions
    if voice is not None:
        speech = cfg.setdefault("speech_config", {})
        if isinstance(speech, dict):
            speech["voice_config"] = {"prebuilt_voice_config": {"voice_name": voice}}
    if tools is not None:
        cfg["tools"] = _function_tools(tools)
    try:
        types.LiveConnectConfig.model_validate(cfg)
    except Exception as exc:
        raise ConnectorError(f"gemini: invalid live config: {exc}", vendor="gemini") from None
    return cfg


async def create_live_api_client(
    api_key: str | None = None,
    model: str = DEFAULT_MODEL,
    instructions: str | None = None,
    voice: str | None = None,
    tools: list[Any] | None = None,
    base_url: str | None = None,
    connect_options: ConnectOptions | None = None,
    barge_in: bool = True,
    on_websocket_closed: Callable[[Event], Any] | None = None,
    http_options: dict[str, Any] | Any | None = None,
    **config: Any,
) -> LiveAPIClient:
    """Connect to the Gemini Live API and return a ready client.

    ``api_key`` left as None is read by the SDK from ``GOOGLE_API_KEY`` or
    ``GEMINI_API_KEY``. ``base_url`` (e.g. ``"https://127.0.0.1:8443"``) replaces the
    Developer API host; the SDK connects to
    ``wss://HOST/ws/google.ai.generativelanguage.VERSION.GenerativeService.BidiGenerateContent``.

    Args:
        api_key: Gemini API key (never logged).
        model: Live model, e.g. ``"gemini-live-2.5-flash-preview"``.
        instructions: system instructions (``setup.systemInstruction``).
        voice: prebuilt voice name, e.g. ``"Puck"``.
        tools: Gemini tools, or bare function declarations
            (``{"name", "description", "parameters"}``).
        base_url: custom API base URL (``http_options.base_url``).
        connect_options: retries, backoff (s) and per-attempt timeout (s).
        barge_in: clear the sinks' playout on ``serverContent.interrupted`` (default True).
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        http_options: ``genai.types.HttpOptions`` (or dict) for the SDK client, e.g.
            ``{"api_version": "v1alpha"}`` or ``{"async_client_args": {"ssl": ctx}}``.
        **config: further ``LiveConnectConfig`` fields (``input_audio_transcription``,
            ``realtime_input_config``, ``temperature`` ...).

    Raises:
        ConnectorError: no API key, an invalid config, or no session after the retries.
    """
    opts = connect_options or ConnectOptions()
    # Both are blocking work (pydantic model building, TLS contexts): off the loop.
    live_config = await asyncio.to_thread(build_live_config, instructions, voice, tools,
                                          **config)
    sdk = await _sdk_client(api_key, base_url, http_options)

    async def attempt() -> tuple[Any, Any]:
        manager = sdk.aio.live.connect(model=model, config=copy.deepcopy(live_config))
        session = await manager.__aenter__()
        if getattr(session, "setup_complete", None) is None:
            try:
                await manager.__aexit__(None, None, None)
            except Exception as exc:
                log.debug("gemini: close after failed setup: %r", exc)
            raise ConnectorError("gemini: the server did not answer setup with setupComplete",
                                 vendor="gemini")
        return manager, session

    manager, session = await connect_with_retries(
        attempt, opts, vendor="gemini", is_retryable=_retryable, describe=_describe
    )
    client = LiveAPIClient(
        session,
        manager=manager,
        model=model,
        barge_in=barge_in,
        on_websocket_closed=on_websocket_closed,
    )
    client._start()
    return client
