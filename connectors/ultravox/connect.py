"""Creating and joining an Ultravox ``serverWebSocket`` call (httpx + websockets).

``create_websocket_api_client`` is what scenarios call as
``Ultravox.create_websocket_api_client``:

1. ``POST {base_url}/calls`` (or ``{base_url}/agents/{agent_id}/calls``) with
   ``X-API-Key`` and a JSON body holding ``medium.serverWebSocket``
   (``inputSampleRate``, ``outputSampleRate``, ``clientBufferSizeMs``);
2. the response's ``joinUrl`` is opened as a WebSocket;
3. a :class:`~connectors.ultravox.client.WebSocketAPIClient` is returned.

One attempt is steps 1 and 2 together; attempts are retried per
:class:`~connectors.base.ConnectOptions` (401/403/4xx are not retried).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from connectors.base import ConnectOptions, ConnectorError, connect_with_retries
from connectors.ultravox.client import WebSocketAPIClient, _ws_log
from gateway.runtime.events import Event

log = logging.getLogger("connectors.ultravox.client")

VENDOR = "ultravox"
DEFAULT_BASE_URL = "https://api.ultravox.ai/api"
#: Audio Ultravox may send ahead of real time; the playout buffer holds it and
#: ``playback_clear_buffer`` clears it on barge-in.
DEFAULT_CLIENT_BUFFER_MS = 30_000

_ssl_context: ssl.SSLContext | None = None


def _shared_ssl_context() -> ssl.SSLContext:
    """One TLS context per process (loading the trust store blocks ~40 ms)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


class UltravoxHTTPError(ConnectorError):
    """The create-call request or the WebSocket join was answered with an HTTP error."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, vendor=VENDOR,
                         retryable=status in (408, 429) or status >= 500)
        self.status = status


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]


def _retryable(exc: BaseException) -> bool:
    from websockets.exceptions import InvalidStatus, InvalidURI

    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return status in (408, 429) or status >= 500
    return not isinstance(exc, InvalidURI | ValueError | TypeError | KeyError)


def _describe(exc: BaseException) -> str:
    from websockets.exceptions import InvalidStatus

    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} on the WebSocket join"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__} on the create-call request: {exc}"
    return f"{type(exc).__name__}: {exc}"


def build_call_body(
    *,
    agent_id: str | None,
    system_prompt: str | None,
    model: str | None,
    voice: str | None,
    selected_tools: list[dict[str, Any]] | None,
    input_sample_rate: int,
    output_sample_rate: int,
    client_buffer_size_ms: int,
    call_params: dict[str, Any],
) -> dict[str, Any]:
    """The JSON body of the create-call request (None values left out).

    ``call_params`` keys are Ultravox call fields, in camelCase or snake_case
    (``first_speaker_settings`` -> ``firstSpeakerSettings``).

    Raises:
        ValueError: an agent call with fields only a plain call takes, or ``medium``
            given in ``call_params`` (the connector owns it).
    """
    body: dict[str, Any] = {}
    plain = {"systemPrompt": system_prompt, "model": model, "voice": voice,
             "selectedTools": selected_tools}
    given = [k for k, v in plain.items() if v is not None]
    if agent_id is not None and given:
        raise ValueError(f"an agent call takes no {', '.join(given)} (the agent defines them)")
    body.update({k: v for k, v in plain.items() if v is not None})
    for key, value in call_params.items():
        if value is not None:
            body[_camel(key)] = value
    if "medium" in body:
        raise ValueError("medium is set by the connector (serverWebSocket)")
    body["medium"] = {"serverWebSocket": {
        "inputSampleRate": int(input_sample_rate),
        "outputSampleRate": int(output_sample_rate),
        "clientBufferSizeMs": int(client_buffer_size_ms),
    }}
    return body


async def create_websocket_api_client(
    api_key: str | None = None,
    system_prompt: str | None = None,
    model: str | None = None,
    voice: str | None = None,
    selected_tools: list[dict[str, Any]] | None = None,
    agent_id: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    input_sample_rate: int = 16000,
    output_sample_rate: int = 16000,
    client_buffer_size_ms: int = DEFAULT_CLIENT_BUFFER_MS,
    connect_options: ConnectOptions | None = None,
    barge_in: bool = True,
    on_websocket_closed: Callable[[Event], Any] | None = None,
    **call_params: Any,
) -> WebSocketAPIClient:
    """Create an Ultravox call with a ``serverWebSocket`` medium and join it.

    Args:
        api_key: Ultravox API key (default ``ULTRAVOX_API_KEY``); sent as
            ``X-API-Key``, never logged.
        system_prompt: ``systemPrompt`` of the call.
        model: e.g. ``"fixie-ai/ultravox"``.
        voice: voice name or id, e.g. ``"Mark"``.
        selected_tools: Ultravox ``selectedTools`` (client tools:
            ``{"temporaryTool": {..., "client": {}}}``).
        agent_id: create the call from this agent (``/agents/{agent_id}/calls``);
            then ``system_prompt``/``model``/``voice``/``selected_tools`` are refused.
        base_url: REST base URL, e.g. ``"https://api.ultravox.ai/api"``.
        input_sample_rate: Hz of the caller audio sent (PCM16).
        output_sample_rate: Hz of the agent audio received (PCM16).
        client_buffer_size_ms: ``clientBufferSizeMs``: how far ahead Ultravox may send.
        connect_options: retries, backoff (s) and per-attempt timeout (s).
        barge_in: clear the sinks' playout on ``playback_clear_buffer`` (default True).
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        **call_params: further create-call fields (``firstSpeakerSettings``,
            ``maxDuration``, ``templateContext`` ... camelCase or snake_case).

    Raises:
        ConnectorError: no API key, bad arguments, the request refused (401/403:
            no retry), or no connection after the retries.
    """
    from websockets.asyncio.client import connect as ws_connect

    key = api_key or os.environ.get("ULTRAVOX_API_KEY")
    if not key:
        raise ConnectorError("ultravox: no API key (pass api_key or set ULTRAVOX_API_KEY)",
                             vendor=VENDOR)
    try:
        body = build_call_body(
            agent_id=agent_id, system_prompt=system_prompt, model=model, voice=voice,
            selected_tools=selected_tools, input_sample_rate=input_sample_rate,
            output_sample_rate=output_sample_rate,
            client_buffer_size_ms=client_buffer_size_ms, call_params=call_params)
    except ValueError as exc:
        raise ConnectorError(f"ultravox: {exc}", vendor=VENDOR) from None
    root = base_url.rstrip("/")
    url = (f"{root}/agents/{quote(str(agent_id), safe='')}/calls" if agent_id is not None
           else f"{root}/calls")
    opts = connect_options or ConnectOptions()
    headers = {"X-API-Key": key, "Accept": "application/json"}
    verify: Any = _shared_ssl_context() if url.startswith("https:") else True

    async def attempt() -> tuple[Any, dict[str, Any]]:
        async with httpx.AsyncClient(verify=verify, timeout=opts.timeout) as http:
            response = await http.post(url, json=body, headers=headers)
        if response.status_code >= 400:
            raise UltravoxHTTPError(
                f"ultravox: create call refused: HTTP {response.status_code}: "
                f"{_detail(response)}",
                status=response.status_code)
        try:
            call = response.json()
        except ValueError:
            raise ConnectorError("ultravox: create call answered with non-JSON",
                                 vendor=VENDOR, retryable=True) from None
        join_url = call.get("joinUrl") if isinstance(call, dict) else None
        if not isinstance(join_url, str) or not join_url:
            raise ConnectorError("ultravox: create call answered without a joinUrl",
                                 vendor=VENDOR, retryable=True)
        log.info("ultravox: call %s created, joining", call.get("callId"))
        ws = await ws_connect(join_url, logger=_ws_log, open_timeout=None,
                              compression=None, max_size=2**22)
        return ws, call

    ws, call = await connect_with_retries(
        attempt, opts, vendor=VENDOR, is_retryable=_retryable, describe=_describe)
    client = WebSocketAPIClient(
        ws,
        call=call,
        input_sample_rate=input_sample_rate,
        output_sample_rate=output_sample_rate,
        barge_in=barge_in,
        on_websocket_closed=on_websocket_closed,
    )
    client._start()
    return client
