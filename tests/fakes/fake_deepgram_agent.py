"""A local stand-in for the Deepgram Voice Agent API over real WebSockets.

Follows the message names and shapes typed by the official ``deepgram-sdk``
(``deepgram.agent.v1``). Every JSON message the fake sends is validated against
the SDK's server message types (``V1SocketClientResponse``) before it goes out
(an invalid one raises :class:`InvalidMessage`), and every client message it
receives against the client types (``AgentV1Settings``,
``AgentV1SendFunctionCallResponse``, ``AgentV1KeepAlive`` ...; an invalid one is
recorded in ``invalid_received`` and answered with an ``Error``). Keys the SDK
types do not declare count as invalid.

Endpoint: ``ws://127.0.0.1:P/v1/agent/converse`` with ``Authorization: Token K``
(anything else: 401 / 404 on the handshake). On connect it sends ``Welcome``;
the first client message must be ``Settings`` (answered ``SettingsApplied``);
audio before it is counted in ``audio_before_settings``.

Modes:
    ``"script"`` (default): the test drives the server with :meth:`play_audio`,
    :meth:`user_started_speaking`, :meth:`function_call_request`, :meth:`error`,
    :meth:`close` ...
    ``"echo"``: every received audio frame goes straight back as a binary frame,
    converted from the Settings' input encoding to its output encoding.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import typing
import warnings
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pydantic
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

    from deepgram.agent.v1 import types as dgt
    from deepgram.agent.v1.socket_client import V1SocketClientResponse

PATH = "/v1/agent/converse"


class InvalidMessage(AssertionError):
    """A message does not validate against the SDK's Voice Agent types."""


def _type_literal(cls: type) -> str:
    return typing.get_args(cls.model_fields["type"].annotation)[0]


#: Server message type -> SDK class (from the SDK's own response union).
SERVER_TYPES: dict[str, type[pydantic.BaseModel]] = {
    _type_literal(c): c for c in typing.get_args(V1SocketClientResponse) if c is not bytes
}
#: Client message type -> SDK class.
CLIENT_TYPES: dict[str, type[pydantic.BaseModel]] = {
    _type_literal(c): c for c in (
        dgt.AgentV1Settings, dgt.AgentV1UpdateSpeak, dgt.AgentV1UpdatePrompt,
        dgt.AgentV1UpdateThink, dgt.AgentV1UpdateListen, dgt.AgentV1InjectUserMessage,
        dgt.AgentV1InjectAgentMessage, dgt.AgentV1SendFunctionCallResponse,
        dgt.AgentV1KeepAlive, dgt.AgentV1ForceEndTurn,
    )
}


def unknown_keys(obj: Any, path: str = "") -> list[str]:
    """Paths of keys a validated SDK model did not declare (recursively)."""
    found: list[str] = []
    if isinstance(obj, pydantic.BaseModel):
        found += [f"{path}.{k}".lstrip(".") for k in (obj.model_extra or {})]
        for name in type(obj).model_fields:
            found += unknown_keys(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found += unknown_keys(v, f"{path}[{i}]")
    return found


def validate_typed(msg: dict[str, Any], table: dict[str, type[pydantic.BaseModel]],
                   side: str) -> Any:
    """``msg`` as the SDK model its ``type`` names in ``table``, with no undeclared keys.

    Raises:
        InvalidMessage: unknown type, invalid, or keys the type lacks.
    """
    cls = table.get(str(msg.get("type")))
    if cls is None:
        raise InvalidMessage(f"unknown {side} message type {msg.get('type')!r}")
    try:
        model = cls.model_validate(msg)
    except pydantic.ValidationError as exc:
        raise InvalidMessage(f"invalid {side} message {msg.get('type')!r}: {exc}") from None
    unknown = unknown_keys(model)
    if unknown:
        raise InvalidMessage(f"{side} message {msg.get('type')!r} has unknown keys {unknown}")
    return model


def validate_server_message(msg: dict[str, Any]) -> Any:
    """Parse ``msg`` as an SDK server message type; return the model.

    Raises:
        InvalidMessage: unknown type, invalid, or keys the type lacks.
    """
    return validate_typed(msg, SERVER_TYPES, "server")


def validate_client_message(msg: dict[str, Any]) -> Any:
    """Parse ``msg`` as an SDK client message type (``Settings`` ...); return the model.

    Raises:
        InvalidMessage: unknown type, invalid, or keys the type lacks.
    """
    return validate_typed(msg, CLIENT_TYPES, "client")


# -- audio (echo mode converts between the Settings' encodings) -------------------
def _fmt(obj: dict[str, Any] | None, default_rate: int = 24000) -> tuple[str, int]:
    obj = obj or {}
    return str(obj.get("encoding") or "linear16"), int(obj.get("sample_rate") or default_rate)


class _Converter:
    def __init__(self, src: tuple[str, int], dst: tuple[str, int]) -> None:
        self.src, self.dst = src, dst
        self._state: Any = None

    def convert(self, data: bytes) -> bytes:
        if self.src == self.dst:
            return data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            enc, rate = self.src
            pcm = {"mulaw": audioop.ulaw2lin, "alaw": audioop.alaw2lin}.get(
                enc, lambda b, w: b)(data, 2)
            if rate != self.dst[1]:
                pcm, self._state = audioop.ratecv(pcm, 2, 1, rate, self.dst[1], self._state)
            out = {"mulaw": audioop.lin2ulaw, "alaw": audioop.lin2alaw}.get(self.dst[0])
            return out(pcm, 2) if out else pcm


class FakeVoiceAgentServer:
    """A protocol-faithful local Deepgram Voice Agent server (see the module docstring).

    Args:
        mode: ``"script"`` or ``"echo"``.
        api_key: the token to accept (``Authorization: Token K``); None accepts any.
        strict: validate every sent and received message against the SDK types.
        reject_handshakes: answer this many upcoming handshakes with ``reject_status``.
        reject_status: the HTTP status used by ``reject_handshakes``.
        refuse_settings: answer ``Settings`` with this ``Error`` code and close.

    Attributes:
        url: ``"ws://127.0.0.1:P"`` (the connector's ``base_url``).
        handshakes: one dict per handshake (``path``, ``authorization``, ``status``).
        received: every client JSON message and ``("audio", n)`` marker, in order.
        received_messages: every client JSON message, in order.
        received_audio: every received audio byte, in arrival order.
        settings: the client's ``Settings`` (dict) once received.
        settings_model: the same, parsed by the SDK's ``AgentV1Settings``.
        audio_before_settings: audio frames received before ``SettingsApplied``.
        function_responses: every ``FunctionCallResponse`` received.
        sent: every JSON message sent, in order; ``sent_audio`` every binary frame.
        invalid_received / invalid_sent: ``(message, reason)`` per invalid message.
    """

    def __init__(
        self,
        *,
        mode: str = "script",
        api_key: str | None = None,
        strict: bool = True,
        reject_handshakes: int = 0,
        reject_status: int = 503,
        refuse_settings: str | None = None,
    ) -> None:
        if mode not in ("script", "echo"):
            raise ValueError("mode must be 'script' or 'echo'")
        self.mode = mode
        self.api_key = api_key
        self.strict = strict
        self.reject_handshakes = reject_handshakes
        self.reject_status = reject_status
        self.refuse_settings = refuse_settings
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._ws: ServerConnection | None = None
        self._changed = asyncio.Condition()
        self._echo: _Converter | None = None
        self._applied = False
        self.port = 0
        self.connections = 0
        self.handshakes: list[dict[str, Any]] = []
        self.received: list[Any] = []
        self.received_messages: list[dict[str, Any]] = []
        self.received_audio = bytearray()
        self.audio_frames = 0
        self.settings: dict[str, Any] | None = None
        self.settings_model: Any = None
        self.audio_before_settings = 0
        self.function_responses: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.sent_audio = bytearray()
        self.invalid_received: list[tuple[dict[str, Any], str]] = []
        self.invalid_sent: list[tuple[dict[str, Any], str]] = []
        self.closed_by_client: tuple[int, str] | None = None

    # -- lifecycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeVoiceAgentServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await serve(self._handler, "127.0.0.1", 0,
                                   process_request=self._process_request)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        auth = request.headers.get("Authorization")
        path = request.path.split("?", 1)[0]
        status = 101
        if self.reject_handshakes > 0:
            self.reject_handshakes -= 1
            status = self.reject_status
        elif path != PATH:
            status = 404
        elif not auth or not auth.startswith("Token ") or (
                self.api_key is not None and auth != f"Token {self.api_key}"):
            status = 401
        self.handshakes.append({"path": request.path, "authorization": auth, "status": status})
        if status != 101:
            return conn.respond(HTTPStatus(status), f"{HTTPStatus(status).phrase}\n")
        return None

    # -- connection -------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._applied = False
        self.connections += 1
        await self._notify()
        try:
            await self.send({"type": "Welcome", "request_id": f"req-{next(self._ids)}"})
            async for raw in ws:
                if isinstance(raw, bytes):
                    await self._on_audio(raw)
                else:
                    await self._on_text(raw)
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            if rcvd is not None:
                self.closed_by_client = (rcvd.code, rcvd.reason)
            await self._notify()

    async def _on_text(self, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            await self.error("Malformed JSON", "INVALID_JSON")
            return
        self.received.append(msg)
        self.received_messages.append(msg)
        model = None
        if self.strict:
            try:
                model = validate_client_message(msg)
            except InvalidMessage as exc:
                self.invalid_received.append((msg, str(exc)))
                await self.error(str(exc)[:200], "INVALID_MESSAGE")
                await self._notify()
                return
        kind = msg.get("type")
        if kind == "Settings":
            if self.settings is not None and self._applied:
                await self.error("Settings may only be sent once", "SETTINGS_ALREADY_APPLIED")
            else:
                self.settings, self.settings_model = msg, model
                if self.refuse_settings:
                    await self.error("The settings are invalid", self.refuse_settings)
                    await self.close(1008, "invalid settings")
                    return
                audio = msg.get("audio") or {}
                self._echo = _Converter(_fmt(audio.get("input")), _fmt(audio.get("output")))
                self._applied = True
                await self.send({"type": "SettingsApplied"})
        elif kind == "FunctionCallResponse":
            self.function_responses.append(msg)
        elif kind == "UpdatePrompt":
            await self.send({"type": "PromptUpdated"})
        elif kind == "UpdateSpeak":
            await self.send({"type": "SpeakUpdated"})
        elif kind == "InjectAgentMessage":
            await self.send({"type": "ConversationText", "role": "assistant",
                             "content": msg.get("message", "")})
        await self._notify()

    async def _on_audio(self, data: bytes) -> None:
        self.received.append(("audio", len(data)))
        self.audio_frames += 1
        if not self._applied:
            self.audio_before_settings += 1
            await self.error("Audio sent before Settings", "UNPARSABLE_CLIENT_MESSAGE")
        else:
            self.received_audio += data
            if self.mode == "echo" and self._echo is not None:
                await self.send_audio(self._echo.convert(data))
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (checked after every change)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    # -- sending ----------------------------------------------------------------------
    def _conn(self) -> ServerConnection:
        if self._ws is None:
            raise RuntimeError("no client connected")
        return self._ws

    async def send(self, msg: dict[str, Any]) -> None:
        """Send one JSON message (validated against the SDK types in strict mode)."""
        if self.strict:
            try:
                validate_server_message(msg)
            except InvalidMessage as exc:
                self.invalid_sent.append((msg, str(exc)))
                raise
        self.sent.append(msg)
        await self._conn().send(json.dumps(msg))

    async def send_raw(self, text: str) -> None:
        """Send text as is (fault injection: malformed JSON)."""
        await self._conn().send(text)

    async def send_audio(self, data: bytes) -> None:
        self.sent_audio += data
        await self._conn().send(data)

    # -- script -------------------------------------------------------------------
    async def play_audio(self, data: bytes, *, chunk: int = 320, total_latency: float = 0.8,
                         tts_latency: float = 0.2, ttt_latency: float = 0.6,
                         done: bool = True) -> None:
        """Speak: ``AgentStartedSpeaking`` (with its latency figures, in seconds),
        ``data`` as binary frames, then ``AgentAudioDone`` when ``done``."""
        await self.send({"type": "AgentStartedSpeaking", "total_latency": total_latency,
                         "tts_latency": tts_latency, "ttt_latency": ttt_latency})
        for i in range(0, len(data), chunk):
            await self.send_audio(data[i:i + chunk])
        if done:
            await self.send({"type": "AgentAudioDone"})

    async def agent_thinking(self, content: str = "") -> None:
        await self.send({"type": "AgentThinking", "content": content})

    async def latency_report(self, **seconds: float) -> None:
        """``LatencyReport`` with the given fields (``stt_latency``, ``ttt_token_latency``,
        ``ttt_text_latency``, ``tts_latency``, ``total_latency`` ...), in seconds."""
        await self.send({"type": "LatencyReport", **seconds})

    async def user_started_speaking(self) -> None:
        await self.send({"type": "UserStartedSpeaking"})

    async def conversation_text(self, role: str, content: str) -> None:
        await self.send({"type": "ConversationText", "role": role, "content": content})

    async def function_call_request(self, name: str, arguments: dict[str, Any] | str,
                                    *, client_side: bool = True,
                                    call_id: str | None = None) -> str:
        """Send a ``FunctionCallRequest`` with one function; returns its id."""
        call_id = call_id or f"call-{next(self._ids)}"
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        await self.send({"type": "FunctionCallRequest", "functions": [
            {"id": call_id, "name": name, "arguments": args, "client_side": client_side}]})
        return call_id

    async def error(self, description: str, code: str) -> None:
        await self.send({"type": "Error", "description": description, "code": code})

    async def warning(self, description: str, code: str) -> None:
        await self.send({"type": "Warning", "description": description, "code": code})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection from the server side."""
        await self._conn().close(code, reason)
