"""A local stand-in for the ElevenLabs Agents (Conversational AI) WebSocket API.

Endpoints (one port, ``websockets`` serving both):

* ``GET /v1/convai/conversation/get-signed-url?agent_id=A`` with ``xi-api-key: K``:
  ``{"signed_url": "ws://127.0.0.1:P/v1/convai/conversation?agent_id=A&conversation_signature=S"}``
  (401 for a wrong key, 404 for another agent) — what the SDK's
  ``conversations.get_signed_url`` calls.
* ``ws://127.0.0.1:P/v1/convai/conversation?agent_id=A``: a public agent when the
  fake has no ``api_key``; otherwise the handshake needs a signature from the REST
  endpoint or an ``xi-api-key`` header (else 403 / 401, as the real server).

Protocol: the client sends ``conversation_initiation_client_data`` first; the fake
answers ``conversation_initiation_metadata`` announcing ``user_input_audio_format``
and ``agent_output_audio_format`` (``ulaw_8000`` by default). Then
``{"user_audio_chunk": b64}`` in, ``audio`` / ``interruption`` / ``ping`` /
``client_tool_call`` / ``user_transcript`` / ``agent_response`` ... out;
``pong`` and ``client_tool_result`` are recorded.

Validation: the SDK has **no** pydantic models for this WebSocket's server messages
(``elevenlabs.types.PingPayload``/``AgentResponsePayload``... belong to the custom
LLM / speech-engine protocol and have other shapes). So every message the fake
sends is checked three ways before it goes out (strict mode): (1) the SDK's own
client-side parser, ``BaseConversation._handle_message_core`` (the code the SDK's
``Conversation``/``AsyncConversation`` run on each message; it raises on a missing
field), (2) audio format names against the SDK's ``TtsOutputFormat`` /
``AsrInputFormat`` literals, (3) the fake's own strict models below (written from
ElevenLabs' published AsyncAPI, extra keys forbidden; *not* SDK types). Received
``conversation_initiation_client_data`` is validated with the SDK's
``ConversationInitiationClientDataRequestInput`` (unknown keys are errors); the
other client messages (``user_audio_chunk``, ``pong``, ``client_tool_result``,
``contextual_update``, ``user_message``, ``user_activity``) are untyped in the SDK
beyond the ``ClientToOrchestratorEvent`` names and are checked with fake-local models.

Modes: ``"script"`` (the test drives: :meth:`play_audio`, :meth:`user_turn`,
:meth:`interruption`, :meth:`client_tool_call`, :meth:`ping`, :meth:`close_connection`
...) and
``"echo"`` (every user audio chunk comes straight back as an ``audio`` event,
converted from the input to the output format).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import typing
import warnings
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import pydantic
from elevenlabs.types import (
    AsrInputFormat,
    ConversationInitiationClientDataRequestInput,
    TtsOutputFormat,
)
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

    # The SDK's conversation module imports the deprecated websockets.legacy API.
    from elevenlabs.conversational_ai.conversation import (
        BaseConversation,
        ClientToOrchestratorEvent,
    )

_log = logging.getLogger("tests.fakes.fake_elevenlabs_agents")


class InvalidMessage(AssertionError):
    """A message does not match the ElevenLabs Agents protocol."""


def _names(alias: Any) -> frozenset[str]:
    out: set[str] = set()
    for arg in typing.get_args(alias):
        if typing.get_origin(arg) is Literal:
            out.update(a for a in typing.get_args(arg) if isinstance(a, str))
    return frozenset(out)


OUTPUT_FORMATS = _names(TtsOutputFormat)
INPUT_FORMATS = _names(AsrInputFormat)


# -- the fake's own strict models (not SDK types: the SDK has none for these) -------
class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


class _MetadataEvent(_Strict):
    conversation_id: str
    agent_output_audio_format: str
    user_input_audio_format: str


class _Metadata(_Strict):
    type: Literal["conversation_initiation_metadata"]
    conversation_initiation_metadata_event: _MetadataEvent


class _AudioEvent(_Strict):
    audio_base_64: str
    event_id: int
    alignment: dict[str, Any] | None = None


class _Audio(_Strict):
    type: Literal["audio"]
    audio_event: _AudioEvent


class _InterruptionEvent(_Strict):
    event_id: int


class _Interruption(_Strict):
    type: Literal["interruption"]
    interruption_event: _InterruptionEvent


class _PingEvent(_Strict):
    event_id: int
    ping_ms: int | None = None


class _Ping(_Strict):
    type: Literal["ping"]
    ping_event: _PingEvent


class _ToolCallBody(_Strict):
    tool_name: str
    tool_call_id: str
    parameters: dict[str, Any]
    event_id: int | None = None


class _ClientToolCall(_Strict):
    type: Literal["client_tool_call"]
    client_tool_call: _ToolCallBody


class _UserTranscriptEvent(_Strict):
    user_transcript: str
    event_id: int | None = None


class _UserTranscript(_Strict):
    type: Literal["user_transcript"]
    user_transcription_event: _UserTranscriptEvent


class _AgentResponseEvent(_Strict):
    agent_response: str
    event_id: int | None = None


class _AgentResponse(_Strict):
    type: Literal["agent_response"]
    agent_response_event: _AgentResponseEvent


class _CorrectionEvent(_Strict):
    original_agent_response: str
    corrected_agent_response: str
    event_id: int | None = None


class _AgentResponseCorrection(_Strict):
    type: Literal["agent_response_correction"]
    agent_response_correction_event: _CorrectionEvent


class _VadScoreEvent(_Strict):
    vad_score: float


class _VadScore(_Strict):
    type: Literal["vad_score"]
    vad_score_event: _VadScoreEvent


class _TentativeEvent(_Strict):
    tentative_agent_response: str


class _Tentative(_Strict):
    type: Literal["internal_tentative_agent_response"]
    tentative_agent_response_internal_event: _TentativeEvent


_SERVER_MODELS: dict[str, type[_Strict]] = {
    "conversation_initiation_metadata": _Metadata,
    "audio": _Audio,
    "interruption": _Interruption,
    "ping": _Ping,
    "client_tool_call": _ClientToolCall,
    "user_transcript": _UserTranscript,
    "agent_response": _AgentResponse,
    "agent_response_correction": _AgentResponseCorrection,
    "vad_score": _VadScore,
    "internal_tentative_agent_response": _Tentative,
}


class _UserAudioChunk(_Strict):
    user_audio_chunk: str


class _Pong(_Strict):
    type: Literal["pong"]
    event_id: int


class _ClientToolResult(_Strict):
    type: Literal["client_tool_result"]
    tool_call_id: str
    result: Any
    is_error: bool


class _Text(_Strict):
    type: Literal["contextual_update", "user_message"]
    text: str


class _UserActivity(_Strict):
    type: Literal["user_activity"]


_CLIENT_MODELS: dict[str, type[_Strict]] = {
    "pong": _Pong,
    "client_tool_result": _ClientToolResult,
    "contextual_update": _Text,
    "user_message": _Text,
    "user_activity": _UserActivity,
}


class _SdkHandler:
    """Message handler for the SDK's parser: every callback on, records nothing."""

    callback_agent_response = callback_agent_response_correction = True
    callback_agent_chat_response_part = callback_user_transcript = True
    callback_latency_measurement = callback_audio_alignment = True

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("handle_"):
            return lambda *a, **k: None
        raise AttributeError(name)


def _sdk_parse(message: dict[str, Any]) -> None:
    """Run the SDK's own client-side handling of one server message."""
    conv = object.__new__(BaseConversation)
    conv._conversation_id = None
    conv._last_interrupt_id = -1
    # Tool calls go to ClientTools on another thread in the SDK: parse their fields here.
    if message.get("type") == "client_tool_call":
        call = message["client_tool_call"]
        _ = {"tool_call_id": call["tool_call_id"], **call.get("parameters", {})}
        return
    conv._handle_message_core(message, _SdkHandler())


def validate_server_message(message: dict[str, Any]) -> None:
    """Check one server message (see the module docstring).

    Raises:
        InvalidMessage: the SDK's parser or the fake's model rejects it.
    """
    kind = message.get("type")
    model = _SERVER_MODELS.get(str(kind))
    if model is None:
        raise InvalidMessage(f"the fake does not know server message {kind!r}")
    try:
        model.model_validate(message)
        _sdk_parse(message)
    except (pydantic.ValidationError, KeyError, TypeError, ValueError) as exc:
        raise InvalidMessage(f"invalid server message {kind!r}: {exc!r}") from None
    if kind == "conversation_initiation_metadata":
        ev = message["conversation_initiation_metadata_event"]
        if ev["agent_output_audio_format"] not in OUTPUT_FORMATS:
            raise InvalidMessage(f"unknown output format {ev['agent_output_audio_format']!r}")
        if ev["user_input_audio_format"] not in INPUT_FORMATS:
            raise InvalidMessage(f"unknown input format {ev['user_input_audio_format']!r}")


def _unknown_keys(obj: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(obj, pydantic.BaseModel):
        found += [f"{path}.{k}".lstrip(".") for k in (obj.model_extra or {})]
        for name in type(obj).model_fields:
            found += _unknown_keys(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found += _unknown_keys(v, f"{path}[{i}]")
    return found


def validate_client_message(message: dict[str, Any]) -> None:
    """Check one client message.

    Raises:
        InvalidMessage: it is not a message the protocol knows, or is malformed.
    """
    if "type" not in message:
        try:
            _UserAudioChunk.model_validate(message)
            base64.b64decode(message["user_audio_chunk"], validate=True)
        except (pydantic.ValidationError, ValueError) as exc:
            raise InvalidMessage(f"invalid user_audio_chunk: {exc!r}") from None
        return
    kind = message["type"]
    known = {e.value for e in ClientToOrchestratorEvent}
    if kind not in known:
        raise InvalidMessage(f"unknown client message type {kind!r}")
    if kind == ClientToOrchestratorEvent.CONVERSATION_INITIATION_CLIENT_DATA.value:
        body = {k: v for k, v in message.items() if k != "type"}
        try:
            model = ConversationInitiationClientDataRequestInput.model_validate(body)
        except pydantic.ValidationError as exc:
            raise InvalidMessage(f"invalid initiation data: {exc}") from None
        unknown = [k for k in _unknown_keys(model)
                   if not k.startswith(("dynamic_variables", "custom_llm_extra_body"))]
        if unknown:
            raise InvalidMessage(f"initiation data has unknown keys {unknown}")
        return
    model_cls = _CLIENT_MODELS.get(kind)
    if model_cls is None:
        return  # feedback, multimodal_message: accepted, not modelled
    try:
        model_cls.model_validate(message)
    except pydantic.ValidationError as exc:
        raise InvalidMessage(f"invalid {kind}: {exc}") from None


# -- audio -----------------------------------------------------------------------
def _fmt(name: str) -> tuple[str, int]:
    if name == "ulaw_8000":
        return "ulaw", 8000
    return "pcm", int(name.split("_", 1)[1])


class _Converter:
    """ElevenLabs format -> format, for echo mode."""

    def __init__(self, src: str, dst: str) -> None:
        self.src, self.dst = _fmt(src), _fmt(dst)
        self._state: Any = None

    def convert(self, data: bytes) -> bytes:
        if self.src == self.dst:
            return data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pcm = audioop.ulaw2lin(data, 2) if self.src[0] == "ulaw" else data
            if self.src[1] != self.dst[1]:
                pcm, self._state = audioop.ratecv(pcm, 2, 1, self.src[1], self.dst[1],
                                                  self._state)
            return audioop.lin2ulaw(pcm, 2) if self.dst[0] == "ulaw" else pcm


def _duration_ms(name: str, nbytes: int) -> float:
    kind, rate = _fmt(name)
    return nbytes * 1000.0 / (rate * (1 if kind == "ulaw" else 2))


class FakeAgentsServer:
    """A protocol-faithful local ElevenLabs Agents server (see the module docstring).

    Args:
        mode: ``"script"`` or ``"echo"``.
        agent_id: the one agent it serves.
        api_key: None: a public agent. Else the agent is private and this is the
            key the signed-URL endpoint (and the ``xi-api-key`` header) accepts.
        input_format / output_format: what ``conversation_initiation_metadata``
            announces (``"ulaw_8000"``, ``"pcm_16000"`` ...).
        strict: validate every sent and received message.
        reject_handshakes: answer this many upcoming WebSocket handshakes with
            HTTP ``reject_status`` (fault injection for retries).
        refuse_auth: refuse every signed-URL request and handshake with
            ``refuse_status`` (401), whatever the credentials.
        close_on_initiation: close with this code (and ``close_reason``) instead
            of answering the initiation data (e.g. 1008 for a refused override).

    Attributes:
        base_url: ``"http://127.0.0.1:P"`` (the SDK's ``base_url``).
        handshakes / rest_requests: one dict per WebSocket handshake / REST request.
        initiation: the last ``conversation_initiation_client_data`` received.
        received: every client message, in order.
        received_audio: every user audio byte, decoded, in arrival order.
        audio_chunks: the decoded bytes of each ``user_audio_chunk``.
        pongs / tool_results: the ``pong`` / ``client_tool_result`` messages.
        sent: every server message sent.
        invalid_received / invalid_sent: ``(message, reason)`` per failed validation.
        closed_by_client: ``(code, reason)`` per connection the client closed.
    """

    def __init__(
        self,
        *,
        mode: str = "script",
        agent_id: str = "agent_test",
        api_key: str | None = None,
        input_format: str = "ulaw_8000",
        output_format: str = "ulaw_8000",
        strict: bool = True,
        reject_handshakes: int = 0,
        reject_status: int = 503,
        refuse_auth: bool = False,
        refuse_status: int = 401,
        close_on_initiation: int | None = None,
        close_reason: str = "",
    ) -> None:
        if mode not in ("script", "echo"):
            raise ValueError("mode must be 'script' or 'echo'")
        self.mode = mode
        self.agent_id = agent_id
        self.api_key = api_key
        self.input_format = input_format
        self.output_format = output_format
        self.strict = strict
        self.reject_handshakes = reject_handshakes
        self.reject_status = reject_status
        self.refuse_auth = refuse_auth
        self.refuse_status = refuse_status
        self.close_on_initiation = close_on_initiation
        self.close_reason = close_reason
        self._ids = itertools.count(1)
        self._signatures: set[str] = set()
        self._server: Server | None = None
        self._ws: ServerConnection | None = None
        self._changed = asyncio.Condition()
        self._send_lock = asyncio.Lock()
        self._echo: _Converter | None = None
        self._turn = 0
        self.port = 0
        self.connections = 0
        self.conversation_id = ""
        self.handshakes: list[dict[str, Any]] = []
        self.rest_requests: list[dict[str, Any]] = []
        self.initiation: dict[str, Any] | None = None
        self.received: list[dict[str, Any]] = []
        self.received_audio = bytearray()
        self.audio_chunks: list[bytes] = []
        self.pongs: list[dict[str, Any]] = []
        self.tool_results: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.invalid_received: list[tuple[dict[str, Any], str]] = []
        self.invalid_sent: list[tuple[dict[str, Any], str]] = []
        self.closed_by_client: list[tuple[int | None, str]] = []

    # -- lifecycle ----------------------------------------------------------------
    async def __aenter__(self) -> FakeAgentsServer:
        self._server = await serve(self._handler, "127.0.0.1", 0,
                                   process_request=self._process_request, logger=_log)
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/convai/conversation?agent_id={self.agent_id}"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def _next_id(self) -> int:
        return next(self._ids)

    # -- HTTP: signed URL and handshake ----------------------------------------------
    @staticmethod
    def _respond(status: int, body: Any) -> Response:
        data = json.dumps(body).encode()
        headers = Headers([("Content-Type", "application/json"),
                           ("Content-Length", str(len(data))), ("Connection", "close")])
        return Response(status, HTTPStatus(status).phrase, headers, data)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        key = request.headers.get("xi-api-key")
        if parts.path == "/v1/convai/conversation/get-signed-url":
            record = {"path": parts.path, "query": query, "xi_api_key": key}
            self.rest_requests.append(record)
            if self.refuse_auth or self.api_key is None or key != self.api_key:
                record["status"] = self.refuse_status if self.refuse_auth else 401
                return self._respond(record["status"], {"detail": {
                    "status": "invalid_api_key", "message": "Invalid API key"}})
            if query.get("agent_id") != self.agent_id:
                record["status"] = 404
                return self._respond(404, {"detail": {"status": "agent_not_found"}})
            sig = f"sig_{self._next_id()}"
            self._signatures.add(sig)
            record["status"] = 200
            url = (f"ws://127.0.0.1:{self.port}/v1/convai/conversation?"
                   + urlencode({"agent_id": self.agent_id, "conversation_signature": sig}))
            return self._respond(200, {"signed_url": url})
        record = {"path": parts.path, "query": query, "xi_api_key": key, "status": 101}
        self.handshakes.append(record)
        if self.reject_handshakes > 0:
            self.reject_handshakes -= 1
            record["status"] = self.reject_status
            return conn.respond(HTTPStatus(self.reject_status), "rejected by the fake\n")
        if parts.path.rstrip("/") != "/v1/convai/conversation":
            record["status"] = 404
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if self.refuse_auth:
            record["status"] = self.refuse_status
            return conn.respond(HTTPStatus(self.refuse_status), "authentication refused\n")
        if query.get("agent_id") != self.agent_id:
            record["status"] = 404
            return conn.respond(HTTPStatus.NOT_FOUND, "agent not found\n")
        if self.api_key is not None:
            sig = query.get("conversation_signature")
            if key is not None and key != self.api_key:
                record["status"] = 401
                return conn.respond(HTTPStatus.UNAUTHORIZED, "invalid api key\n")
            if key is None and (sig is None or sig not in self._signatures):
                record["status"] = 403
                return conn.respond(HTTPStatus.FORBIDDEN, "this agent requires auth\n")
            if sig is not None:
                self._signatures.discard(sig)  # one conversation per signature
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        self._ws = ws
        self.connections += 1
        self._echo = None
        await self._notify()
        try:
            first = json.loads(await ws.recv())
            await self._on_client(first)
            if first.get("type") != "conversation_initiation_client_data":
                await ws.close(1008, "expected conversation_initiation_client_data")
                return
            if self.close_on_initiation is not None:
                await ws.close(self.close_on_initiation, self.close_reason)
                return
            self.initiation = first
            self.conversation_id = f"conv_{self._next_id()}"
            await self.send({"type": "conversation_initiation_metadata",
                             "conversation_initiation_metadata_event": {
                                 "conversation_id": self.conversation_id,
                                 "agent_output_audio_format": self.output_format,
                                 "user_input_audio_format": self.input_format}})
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self.invalid_received.append(({"raw": str(raw)[:200]}, "not JSON"))
                    continue
                await self._on_client(msg)
        except ConnectionClosed:
            pass
        finally:
            if ws.close_code is not None:
                self.closed_by_client.append((ws.close_code, ws.close_reason or ""))
            if self._ws is ws:
                self._ws = None
            await self._notify()

    # -- client messages -------------------------------------------------------------
    async def _on_client(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            self.invalid_received.append(({"raw": repr(msg)[:200]}, "not an object"))
            return
        self.received.append(msg)
        if self.strict:
            try:
                validate_client_message(msg)
            except InvalidMessage as exc:
                self.invalid_received.append((msg, str(exc)))
        if "user_audio_chunk" in msg:
            try:
                audio = base64.b64decode(msg["user_audio_chunk"])
            except ValueError:
                audio = b""
            self.audio_chunks.append(audio)
            self.received_audio += audio
            if self.mode == "echo" and audio:
                if self._echo is None:
                    self._echo = _Converter(self.input_format, self.output_format)
                    self._turn = self._next_id()
                await self.send_audio(self._echo.convert(audio), event_id=self._turn)
        elif msg.get("type") == "pong":
            self.pongs.append(msg)
        elif msg.get("type") == "client_tool_result":
            self.tool_results.append(msg)
        await self._notify()

    # -- sending -------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one server message; validated first in strict mode.

        Raises:
            InvalidMessage: strict mode and ``message`` is malformed.
            ConnectionError: no client is connected.
        """
        if self.strict:
            try:
                validate_server_message(message)
            except InvalidMessage as exc:
                self.invalid_sent.append((message, str(exc)))
                raise
        return await self.send_raw(json.dumps(message), message)

    async def send_raw(self, text: str, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send ``text`` as is (no validation): malformed JSON for bad-input tests."""
        ws = self._ws
        if ws is None:
            raise ConnectionError("no client connected to the fake")
        async with self._send_lock:
            rec = record if record is not None else {"raw": text}
            self.sent.append(rec)
            await ws.send(text)
        return rec

    async def close_connection(self, code: int = 1000, reason: str = "") -> None:
        """Close the client's WebSocket from the server side."""
        ws = self._ws
        if ws is not None:
            await ws.close(code, reason)

    # -- scripted server behaviour -----------------------------------------------------
    async def send_audio(self, data: bytes, *, event_id: int) -> None:
        await self.send({"type": "audio", "audio_event": {
            "audio_base_64": base64.b64encode(data).decode("ascii"), "event_id": event_id}})

    async def play_audio(self, data: bytes, *, chunk_ms: int = 100,
                         event_id: int | None = None) -> int:
        """Send ``data`` (in the output format) as ``audio`` events of one agent turn.

        Returns:
            the turn's ``event_id`` (a new one unless given).
        """
        eid = self._next_id() if event_id is None else event_id
        self._turn = eid
        kind, rate = _fmt(self.output_format)
        step = max(1, rate * chunk_ms // 1000 * (1 if kind == "ulaw" else 2))
        for i in range(0, len(data), step):
            await self.send_audio(data[i:i + step], event_id=eid)
        return eid

    async def interruption(self, event_id: int | None = None) -> int:
        """Send ``interruption`` for ``event_id`` (default: the current turn)."""
        eid = self._turn if event_id is None else event_id
        await self.send({"type": "interruption", "interruption_event": {"event_id": eid}})
        return eid

    async def ping(self, ping_ms: int | None = None) -> int:
        """Send ``ping``; returns its ``event_id`` (the client must ``pong`` it)."""
        eid = self._next_id()
        await self.send({"type": "ping", "ping_event": {"event_id": eid, "ping_ms": ping_ms}})
        return eid

    async def client_tool_call(self, tool_name: str, parameters: dict[str, Any]) -> str:
        """Send ``client_tool_call``; returns its ``tool_call_id``."""
        call_id = f"toolu_{self._next_id():06d}"
        await self.send({"type": "client_tool_call", "client_tool_call": {
            "tool_name": tool_name, "tool_call_id": call_id, "parameters": parameters}})
        return call_id

    async def user_transcript(self, text: str, *, event_id: int | None = None) -> None:
        """Send ``user_transcript`` (with ``event_id`` when given)."""
        body: dict[str, Any] = {"user_transcript": text}
        if event_id is not None:
            body["event_id"] = event_id
        await self.send({"type": "user_transcript", "user_transcription_event": body})

    async def agent_response(self, text: str, *, event_id: int | None = None) -> None:
        """Send ``agent_response`` (with ``event_id`` when given)."""
        body: dict[str, Any] = {"agent_response": text}
        if event_id is not None:
            body["event_id"] = event_id
        await self.send({"type": "agent_response", "agent_response_event": body})

    async def vad_score(self, score: float) -> None:
        await self.send({"type": "vad_score", "vad_score_event": {"vad_score": score}})

    async def user_turn(self, text: str, answer: bytes = b"", *, reply: str = "",
                        vad: tuple[float, ...] = (0.9, 0.8, 0.1)) -> int:
        """One user turn as the server reports it: ``vad_score`` while the user
        speaks, the finalized ``user_transcript`` (its own ``event_id``) once the
        turn ends, then the answer: ``agent_response`` and ``answer`` as ``audio``
        events of the next ``event_id`` (:meth:`play_audio`), when given.

        Returns:
            the answer's ``event_id`` (0 without an answer).
        """
        for score in vad:
            await self.vad_score(score)
        await self.user_transcript(text, event_id=self._next_id())
        if not answer:
            return 0
        eid = self._next_id()
        await self.agent_response(reply or "...", event_id=eid)
        return await self.play_audio(answer, event_id=eid)

    # -- waiting -------------------------------------------------------------------
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, cond: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until ``cond()`` holds (re-checked after every received message)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(cond)

    async def wait_connected(self, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self._ws is not None and self.initiation is not None,
                              timeout=timeout)

    async def wait_audio(self, nbytes: int, timeout: float = 5.0) -> None:
        """Wait until at least ``nbytes`` of user audio were received."""
        await self.wait_until(lambda: len(self.received_audio) >= nbytes, timeout=timeout)

    async def wait_for(self, kind: str, *, count: int = 1,
                       timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the ``count``-th client message of type ``kind``; return it."""
        def matches() -> list[dict[str, Any]]:
            return [m for m in self.received if m.get("type") == kind]

        await self.wait_until(lambda: len(matches()) >= count, timeout=timeout)
        return matches()[count - 1]

    def audio_ms_received(self) -> float:
        return _duration_ms(self.input_format, len(self.received_audio))
