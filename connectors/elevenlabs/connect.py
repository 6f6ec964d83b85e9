"""Connecting to an ElevenLabs Agent (Conversational AI) conversation.

What the official ``elevenlabs`` SDK is used for, and what not:

* The SDK's ``AsyncConversation`` (``elevenlabs.conversational_ai.conversation``)
  is **not** used: ``start_session()`` only spawns a background task, so a refused
  connection cannot become a :class:`~connectors.base.ConnectorError`; it has no
  retries, never exposes ``conversation_initiation_metadata`` (the audio format the
  agent announced), runs client tools on its own thread and loop, and hands us no
  raw message for ``event.data``. Its audio interface ``await``s the socket send,
  which the 20 ms media clock must never do.
* From the SDK we use: ``AsyncElevenLabs(...).conversational_ai.conversations
  .get_signed_url(agent_id=...)`` for private agents (REST, ``xi-api-key``), its
  base URL handling (``ElevenLabsEnvironment``, ``url_utils.build_ws_url``) for the
  public URL ``wss://api.elevenlabs.io/v1/convai/conversation?agent_id=...``, its
  message type names (``ClientToOrchestratorEvent``) and its
  ``ConversationInitiationClientDataRequestInput`` model, which checks the
  ``conversation_initiation_client_data`` we send; audio format names come from
  ``elevenlabs.types.TtsOutputFormat`` / ``AsrInputFormat``.
* The WebSocket protocol itself is spoken with ``websockets`` (the library the
  SDK uses), in :mod:`connectors.elevenlabs.client`.

Audio format: the protocol lets a client override the prompt, first message,
language, voice ... but not the audio formats (``ConversationConfigClientOverride``
has none); they are agent settings (``conversation_config.tts.agent_output_audio_format``
and ``conversation_config.asr.user_input_audio_format``; set both to ``"ulaw_8000"``
for G.711 passthrough on PCMU calls). The client uses what the server announces.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import pydantic
from elevenlabs.environment import ElevenLabsEnvironment
from elevenlabs.types import ConversationInitiationClientDataRequestInput
from elevenlabs.url_utils import build_ws_url
from elevenlabs.version import __version__ as SDK_VERSION

from connectors.base import (
    ConnectOptions,
    ConnectorError,
    connect_with_retries,
    shared_sdk_client,
)
from connectors.elevenlabs.client import AgentsClient, _ws_log, metadata_formats
from connectors.elevenlabs.formats import ClientToOrchestratorEvent
from gateway.runtime.events import Event

log = logging.getLogger("connectors.elevenlabs.client")

VENDOR = "elevenlabs"
#: Close codes after which another attempt may succeed.
_RETRYABLE_CLOSE = frozenset({1001, 1006, 1011, 1012, 1013, 1014})


def _status_of(exc: BaseException) -> int | None:
    for obj in (getattr(exc, "response", None), exc):
        status = getattr(obj, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _retryable(exc: BaseException) -> bool:
    """Network trouble, 408, 429 and 5xx are worth another attempt; auth and 4xx are not."""
    from websockets.exceptions import InvalidURI

    status = _status_of(exc)
    if status is not None:
        return status == 429 or status >= 500 or status == 408
    return not isinstance(exc, InvalidURI | ValueError | TypeError)


def _describe(exc: BaseException) -> str:
    from websockets.exceptions import InvalidStatus

    status = _status_of(exc)
    if status is not None:
        where = "WebSocket handshake" if isinstance(exc, InvalidStatus) else "signed URL request"
        what = " (authentication refused)" if status in (401, 403) else ""
        return f"HTTP {status} on the {where}{what}"
    return f"{type(exc).__name__}: {exc}"


def _build_sdk(api_key: str, base_url: str) -> Any:
    """An ``AsyncElevenLabs`` (loads the TLS trust store: blocking, so it runs in a
    worker thread via ``shared_sdk_client``)."""
    from elevenlabs.client import AsyncElevenLabs

    return AsyncElevenLabs(api_key=api_key, base_url=base_url)


def conversation_url(agent_id: str, base_url: str | None = None,
                     environment: str | None = None) -> str:
    """The public-agent WebSocket URL, built as the SDK builds it
    (``https://h`` -> ``wss://h/v1/convai/conversation?agent_id=...``)."""
    params = [("agent_id", agent_id)]
    if environment:
        params.append(("environment", environment))
    return build_ws_url(base_url or ElevenLabsEnvironment.PRODUCTION.value,
                        ["v1", "convai", "conversation"], params)


def initiation_message(
    overrides: dict[str, Any] | None = None,
    dynamic_variables: dict[str, Any] | None = None,
    custom_llm_extra_body: dict[str, Any] | None = None,
    user_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The ``conversation_initiation_client_data`` message (checked against the SDK's
    ``ConversationInitiationClientDataRequestInput``).

    Raises:
        ConnectorError: the fields do not validate.
    """
    msg: dict[str, Any] = {
        "type": ClientToOrchestratorEvent.CONVERSATION_INITIATION_CLIENT_DATA.value,
        "conversation_config_override": copy.deepcopy(overrides or {}),
        "custom_llm_extra_body": copy.deepcopy(custom_llm_extra_body or {}),
        "dynamic_variables": copy.deepcopy(dynamic_variables or {}),
        "source_info": {"source": "python_sdk", "version": SDK_VERSION},
    }
    if user_id:
        msg["user_id"] = user_id
    msg.update(copy.deepcopy(fields))
    body = {k: v for k, v in msg.items() if k != "type"}
    try:
        ConversationInitiationClientDataRequestInput.model_validate(body)
        json.dumps(msg)
    except (pydantic.ValidationError, TypeError, ValueError) as exc:
        raise ConnectorError(f"elevenlabs: bad conversation initiation data: {exc}",
                             vendor=VENDOR) from None
    return msg


async def create_agents_client(
    agent_id: str,
    api_key: str | None = None,
    base_url: str | None = None,
    overrides: dict[str, Any] | None = None,
    dynamic_variables: dict[str, Any] | None = None,
    connect_options: ConnectOptions | None = None,
    barge_in: bool = True,
    *,
    signed_url: str | None = None,
    use_signed_url: bool = True,
    environment: str | None = None,
    custom_llm_extra_body: dict[str, Any] | None = None,
    user_id: str | None = None,
    on_websocket_closed: Callable[[Event], Any] | None = None,
    **initiation: Any,
) -> AgentsClient:
    """Start a conversation with an ElevenLabs Agent and return a ready client.

    Public agents need no key. With an API key (``api_key`` or ``ELEVENLABS_API_KEY``)
    a signed URL is fetched with the SDK first (as the SDK does for
    ``requires_auth``), or, with ``use_signed_url=False``, the key is sent as the
    ``xi-api-key`` header of the WebSocket handshake. The server's
    ``conversation_initiation_metadata`` is awaited (it fixes the audio formats) and
    dispatched to the handlers added right after this returns.

    Args:
        agent_id: the agent (``agent_...``).
        api_key: ElevenLabs API key (never logged); None reads ``ELEVENLABS_API_KEY``.
        base_url: REST base URL, default ``https://api.elevenlabs.io``; the WebSocket
            URL is derived from it (``http`` -> ``ws``).
        overrides: ``conversation_config_override`` (``{"agent": {"prompt": {"prompt":
            ...}, "first_message": ..., "language": ...}, "tts": {"voice_id": ...}}``);
            the agent must allow each override.
        dynamic_variables: values for the agent's ``{{variables}}``.
        connect_options: retries, backoff (s) and per-attempt timeout (s).
        barge_in: clear playout on ``interruption`` (default True).
        signed_url: a signed URL obtained elsewhere (no key needed then).
        use_signed_url: with a key, fetch a signed URL (default) or send the header.
        environment: the agent environment (``"production"`` ...).
        custom_llm_extra_body: extra body for a custom LLM.
        user_id: the end user's id, for the agent owner.
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        **initiation: further ``conversation_initiation_client_data`` fields
            (``branch_id``, ...).

    Raises:
        ConnectorError: auth refused (HTTP 401/403, never retried), an unusable
            audio format, or no connection after the retries.
    """
    from websockets.asyncio.client import connect

    opts = connect_options or ConnectOptions()
    key = api_key if api_key is not None else os.environ.get("ELEVENLABS_API_KEY")
    base = base_url or ElevenLabsEnvironment.PRODUCTION.value
    first = initiation_message(overrides, dynamic_variables, custom_llm_extra_body,
                               user_id, **initiation)
    sdk = (await shared_sdk_client(("elevenlabs", key, base), lambda: _build_sdk(key, base))
           if key and not signed_url and use_signed_url else None)

    async def url_and_headers() -> tuple[str, dict[str, str]]:
        if signed_url:
            return signed_url, {}
        if sdk is not None:
            response = await sdk.conversational_ai.conversations.get_signed_url(
                agent_id=agent_id, environment=environment)
            return response.signed_url, {}
        headers = {"xi-api-key": key} if key else {}
        return conversation_url(agent_id, base, environment), headers

    async def attempt() -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
        url, headers = await url_and_headers()
        conn = await connect(url, additional_headers=headers, max_size=16 * 1024 * 1024,
                             logger=_ws_log, user_agent_header=f"voice-gateway elevenlabs/"
                             f"{SDK_VERSION}")
        try:
            await conn.send(json.dumps(first, separators=(",", ":")))
            early: list[dict[str, Any]] = []
            while True:
                msg = await _recv_json(conn)
                if msg is None:
                    continue
                if msg.get("type") == "conversation_initiation_metadata":
                    break
                if msg.get("type") == "error":
                    raise ConnectorError(
                        f"elevenlabs: server refused the conversation: "
                        f"{msg.get('message') or msg}", vendor=VENDOR)
                early.append(msg)
            fin, fout = metadata_formats(msg)
            if fin is None or fout is None:
                ev = msg.get("conversation_initiation_metadata_event") or {}
                raise ConnectorError(
                    "elevenlabs: the agent uses audio formats the gateway cannot handle: "
                    f"in={ev.get('user_input_audio_format')!r} "
                    f"out={ev.get('agent_output_audio_format')!r}", vendor=VENDOR)
        except BaseException:
            try:
                await conn.close()
            except Exception as exc:
                log.debug("elevenlabs: close after failed start: %r", exc)
            raise
        return conn, msg, early

    conn, metadata, early = await connect_with_retries(
        attempt, opts, vendor=VENDOR, is_retryable=_retryable, describe=_describe)
    client = AgentsClient(conn, metadata, agent_id=agent_id, barge_in=barge_in,
                          on_websocket_closed=on_websocket_closed)
    log.info("elevenlabs: conversation %s with agent %s: in=%s out=%s",
             client.conversation_id, agent_id, client.input_format, client.output_format)
    client._start(early)
    return client


async def _recv_json(conn: Any) -> dict[str, Any] | None:
    """The next JSON object from ``conn``; None for anything else.

    Raises:
        ConnectorError: the server closed the connection during the start.
    """
    from websockets.exceptions import ConnectionClosed

    try:
        raw = await conn.recv()
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        code = rcvd.code if rcvd is not None else 1006
        reason = rcvd.reason if rcvd is not None else ""
        raise ConnectorError(
            f"elevenlabs: the server closed the connection before the conversation "
            f"started: code={code} reason={reason!r}",
            vendor=VENDOR, retryable=code in _RETRYABLE_CLOSE) from None
    try:
        msg = json.loads(raw)
    except ValueError:
        log.warning("elevenlabs: dropped a non-JSON message during the start")
        return None
    return msg if isinstance(msg, dict) else None
