"""Connecting to the Deepgram Voice Agent API with the official SDK.

``create_voice_agent_client`` is what scenarios call as
``Deepgram.create_voice_agent_client``: it opens ``client.agent.v1.connect()``
(``<base_url>/v1/agent/converse``), retries per
:class:`~connectors.base.ConnectOptions`, waits for ``Welcome`` and returns a
:class:`~connectors.deepgram.client.VoiceAgentClient`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from connectors.base import (
    ConnectOptions,
    ConnectorError,
    connect_with_retries,
    shared_sdk_client,
)
from connectors.deepgram import _sdk
from connectors.deepgram.client import DEEPGRAM_AGENT_CAPABILITIES, VoiceAgentClient
from connectors.deepgram.settings import build_settings, validate_settings
from gateway.media.format import AudioFormat
from gateway.runtime.events import Event

log = logging.getLogger("connectors.deepgram.client")

#: The production Voice Agent endpoint (the SDK appends ``/v1/agent/converse``).
DEFAULT_AGENT_URL = "wss://agent.deepgram.com"
_PATH = "/v1/agent/converse"


def agent_base_url(base_url: str | None) -> str:
    """Normalise a custom URL to what the SDK's ``environment.agent`` expects.

    Accepts ``ws(s)://host[:port]``, ``http(s)://...`` (mapped to ``ws(s)``) and a
    full URL ending in ``/v1/agent/converse`` (the suffix is dropped).
    """
    url = (base_url or os.environ.get("DEEPGRAM_AGENT_URL") or DEFAULT_AGENT_URL).strip()
    if url.startswith("http://") or url.startswith("https://"):
        url = "ws" + url[4:]
    url = url.rstrip("/")
    if url.endswith(_PATH):
        url = url[: -len(_PATH)]
    return url


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _retryable(exc: BaseException) -> bool:
    """Network trouble, 408, 429 and 5xx are worth another attempt; the rest is not."""
    from websockets.exceptions import InvalidURI

    status = _status(exc)
    if status is not None:
        return status in (408, 429) or status >= 500
    return not isinstance(exc, InvalidURI | ValueError | TypeError)


def _describe(exc: BaseException) -> str:
    # Never str() an SDK ApiError: it renders the request headers (the API key).
    status = _status(exc)
    if status is not None:
        what = " (authentication refused)" if status in (401, 403) else ""
        return f"HTTP {status} on the WebSocket handshake{what}"
    return f"{type(exc).__name__}: {exc}"


def _build_sdk(api_key: str, url: str) -> Any:
    """An ``AsyncDeepgramClient`` for ``url`` (builds an httpx client and its TLS trust
    store: blocking, so it runs in a worker thread via ``shared_sdk_client``)."""
    rest = "http" + url[2:] if url.startswith("ws") else url
    env = _sdk.DeepgramClientEnvironment(base=rest, production=url, agent=url, agent_rest=rest)
    return _sdk.AsyncDeepgramClient(api_key=api_key, environment=env)


def _type_of(msg: Any) -> str | None:
    if isinstance(msg, dict):
        return msg.get("type")
    if isinstance(msg, bytes | bytearray):
        return None
    return getattr(msg, "type", None)


def _refused(msg: Any, what: str) -> ConnectorError:
    data = msg if isinstance(msg, dict) else msg.dict()
    return ConnectorError(
        f"deepgram: {what}: {data.get('code')}: {data.get('description')}", vendor="deepgram")


def _pinned_formats(audio_format: AudioFormat | None, output_format: AudioFormat | None,
                    ) -> tuple[AudioFormat, AudioFormat] | None:
    caps = DEEPGRAM_AGENT_CAPABILITIES
    if audio_format is None:
        if output_format is not None:
            raise ValueError("output_format needs audio_format")
        return None
    out = output_format or (audio_format if audio_format.encoding.is_g711 else caps.pcm_output)
    if audio_format not in caps.input_formats or out not in caps.output_formats:
        raise ValueError(f"deepgram does not accept {audio_format} in and {out} out")
    return audio_format, out


async def create_voice_agent_client(
    api_key: str | None = None,
    settings: dict[str, Any] | None = None,
    listen: dict[str, Any] | None = None,
    think: dict[str, Any] | list[dict[str, Any]] | None = None,
    speak: dict[str, Any] | list[dict[str, Any]] | None = None,
    instructions: str | None = None,
    functions: list[dict[str, Any]] | None = None,
    base_url: str | None = None,
    connect_options: ConnectOptions | None = None,
    barge_in: bool = True,
    *,
    greeting: str | None = None,
    audio_format: AudioFormat | None = None,
    output_format: AudioFormat | None = None,
    settings_delay: float = 0.5,
    keepalive_interval: float = 5.0,
    on_websocket_closed: Callable[[Event], Any] | None = None,
) -> VoiceAgentClient:
    """Connect to the Deepgram Voice Agent API and return a ready client.

    The server's ``Welcome`` is awaited and dispatched to handlers added right
    after this returns. ``Settings`` go out when the first source attaches (a
    PCMU/PCMA call: G.711 passthrough both ways; otherwise PCM16 16 kHz in /
    24 kHz out) or after ``settings_delay`` seconds. With ``audio_format`` the
    formats are fixed up front: ``Settings`` are sent during the connect and
    ``SettingsApplied`` is awaited before this returns (a refusal raises).

    Args:
        api_key: Deepgram API key; default ``DEEPGRAM_API_KEY`` (never logged).
        settings: a full or partial ``Settings`` body; the keyword parts override it.
        listen: ``agent.listen``, e.g. ``{"provider": {"type": "deepgram", "model": "nova-3"}}``.
        think: ``agent.think`` (or a list of fallbacks), e.g.
            ``{"provider": {"type": "open_ai", "model": "gpt-4o-mini"}}``.
        speak: ``agent.speak``, e.g.
            ``{"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}}``.
        instructions: the system prompt (``agent.think.prompt``).
        functions: ``agent.think.functions``: ``[{"name", "description", "parameters"}]``
            (no ``endpoint``: client-side, surfaced as ``VoiceAIEvents.ToolCall``).
        base_url: agent endpoint, ``wss://agent.deepgram.com`` by default (or
            ``DEEPGRAM_AGENT_URL``); ``/v1/agent/converse`` is appended.
        connect_options: retries, backoff (s) and per-attempt timeout (s).
        barge_in: clear the sinks' playout on ``UserStartedSpeaking`` (default True).
        greeting: ``agent.greeting``, spoken first.
        audio_format: fix the input format now instead of following the first source.
        output_format: the output format with ``audio_format`` (default: the same
            law for G.711, else PCM16 24 kHz).
        settings_delay: seconds to wait for a source before sending PCM Settings.
        keepalive_interval: idle seconds before a ``KeepAlive`` is sent.
        on_websocket_closed: called with the ``WebSocketClosed`` event.

    Raises:
        ConnectorError: no API key, invalid settings, a refusal, or no connection
            after the retries.
    """
    opts = connect_options or ConnectOptions()
    key = api_key or os.environ.get("DEEPGRAM_API_KEY")
    if not key:
        raise ConnectorError("deepgram: no API key (pass api_key= or set DEEPGRAM_API_KEY)",
                             vendor="deepgram")
    args: dict[str, Any] = {"settings": settings, "listen": listen, "think": think,
                            "speak": speak, "instructions": instructions,
                            "functions": functions, "greeting": greeting}
    try:
        pinned = _pinned_formats(audio_format, output_format)
        caps = DEEPGRAM_AGENT_CAPABILITIES
        first_settings = validate_settings(
            build_settings(*(pinned or (caps.pcm_input, caps.pcm_output)), **args))
    except ValueError as exc:
        raise ConnectorError(str(exc) if str(exc).startswith("deepgram") else f"deepgram: {exc}",
                             vendor="deepgram") from None
    url = agent_base_url(base_url)
    sdk = await shared_sdk_client(("deepgram", key, url), lambda: _build_sdk(key, url))

    async def attempt() -> tuple[Any, Any, list[Any]]:
        manager = sdk.agent.v1.connect()
        try:
            socket = await manager.__aenter__()
        except _sdk.ApiError as exc:  # its str() holds the headers: drop the chain
            raise ConnectorError(f"deepgram: {_describe(exc)}", vendor="deepgram",
                                 retryable=_retryable(exc)) from None
        try:
            early = [await socket.recv()]
            if _type_of(early[0]) == "Error":
                raise _refused(early[0], "server refused the connection")
            if _type_of(early[0]) != "Welcome":
                raise ConnectorError(f"deepgram: expected Welcome, got {_type_of(early[0])!r}",
                                     vendor="deepgram")
            if pinned is not None:
                await socket.send_settings(first_settings)
                while True:
                    msg = await socket.recv()
                    early.append(msg)
                    kind = _type_of(msg)
                    if kind == "Error":
                        raise _refused(msg, "server refused the Settings")
                    if kind == "SettingsApplied":
                        break
        except BaseException:
            try:
                await manager.__aexit__(None, None, None)
            except Exception as exc:
                log.debug("deepgram: close after failed start: %r", exc)
            raise
        return manager, socket, early

    manager, socket, early = await connect_with_retries(
        attempt, opts, vendor="deepgram", is_retryable=_retryable, describe=_describe)

    async def closer() -> None:
        await manager.__aexit__(None, None, None)

    client = VoiceAgentClient(
        socket,
        closer=closer,
        settings_args=args,
        audio_format=pinned,
        barge_in=barge_in,
        on_websocket_closed=on_websocket_closed,
        settings_delay=settings_delay,
        keepalive_interval=keepalive_interval,
    )
    client._start(early)
    return client
