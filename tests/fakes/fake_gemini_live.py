"""A local stand-in for the Gemini Live API (``BidiGenerateContent``) over TLS WebSockets.

Speaks the wire protocol the official ``google-genai`` SDK speaks: the endpoint is
``wss://127.0.0.1:P/ws/google.ai.generativelanguage.{v1,v1beta,v1alpha}.GenerativeService.BidiGenerateContent``
with the key in ``x-goog-api-key``; the client's first message is ``setup``, the
server answers ``setupComplete``; then the client sends ``realtimeInput`` /
``clientContent`` / ``toolResponse`` / ``contextUpdate`` and the server sends
``serverContent`` / ``toolCall`` / ``toolCallCancellation`` / ``goAway`` ...
Errors end the session with a close frame as the real service does (1007 for an
invalid payload or API key).

The SDK forces ``wss`` when it has an API key, so the fake serves TLS with a
``trustme`` test CA: point the SDK at :attr:`FakeGeminiLiveServer.ca_file`
(``SSL_CERT_FILE``) or pass :meth:`FakeGeminiLiveServer.client_ssl_context` as
``http_options={"async_client_args": {"ssl": ctx}}``.

Strict mode (default): every message the fake sends is parsed with the SDK's own
``google.genai.types.LiveServerMessage`` (``extra="forbid"``: unknown keys fail)
before it goes out (:class:`InvalidMessage` is raised); every client message is
parsed with ``LiveClientMessage`` and must set exactly one field (an invalid one is
recorded in ``invalid_received`` and the session is closed with 1007).

Modes:
    ``"script"`` (default): the test drives the server with :meth:`play_audio`,
    :meth:`user_turn`, :meth:`voice_activity`, :meth:`interrupted`, :meth:`tool_call`,
    :meth:`close_connection` ...
    ``"echo"``: every ``realtimeInput.audio`` chunk (16 kHz) is resampled to 24 kHz
    and sent straight back as ``serverContent.modelTurn`` inline data; the turn is
    closed (``turnComplete``) after ``echo_turn_ms`` of audio and on
    ``audioStreamEnd``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import ssl
import tempfile
import warnings
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pydantic
import trustme
from google.genai import _live_converters, types
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

_log = logging.getLogger("tests.fakes.fake_gemini_live")


class _RedactKey(logging.Filter):
    """Keeps API keys out of the websockets handshake debug log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "x-goog-api-key":
            record.args = (args[0], "[redacted]")
        return True


_log.addFilter(_RedactKey())

PATH_PREFIX = "/ws/google.ai.generativelanguage."
PATH_SUFFIX = ".GenerativeService.BidiGenerateContent"
API_VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
INPUT_MIME = "audio/pcm;rate=16000"
OUTPUT_MIME = "audio/pcm;rate=24000"
#: Close code and reason the real service uses for a bad key or payload.
INVALID_ARGUMENT = 1007
BAD_KEY_REASON = "API key not valid. Please pass a valid API key."


#: ``voiceActivity`` keys on the wire (``_live_converters._VoiceActivity_from_mldev``).
_VOICE_ACTIVITY_WIRE_KEYS = frozenset({"type", "audioOffset"})


class InvalidMessage(AssertionError):
    """A message does not validate against the SDK's Live types."""


def validate_server_message(message: dict[str, Any]) -> types.LiveServerMessage:
    """Parse wire JSON ``message`` as the SDK's ``LiveServerMessage`` (unknown keys fail).

    Raises:
        InvalidMessage: it does not validate.
    """
    body = dict(message)
    activity = body.get("voiceActivity")
    if isinstance(activity, dict):
        # On the wire the field is ``type``; the SDK's converter renames it (and drops
        # keys it does not know, so those are checked here).
        unknown = set(activity) - _VOICE_ACTIVITY_WIRE_KEYS
        if unknown:
            raise InvalidMessage(f"voiceActivity has unknown keys {sorted(unknown)}")
        if activity.get("type") not in {t.value for t in types.VoiceActivityType}:
            raise InvalidMessage(f"voiceActivity.type {activity.get('type')!r} is unknown")
        body["voiceActivity"] = _live_converters._VoiceActivity_from_mldev(activity)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return types.LiveServerMessage.model_validate_json(json.dumps(body))
    except pydantic.ValidationError as exc:
        raise InvalidMessage(f"invalid server message {list(message)}: {exc}") from None


def validate_client_message(raw: str | bytes) -> types.LiveClientMessage:
    """Parse a client frame as the SDK's ``LiveClientMessage``; exactly one field set.

    Raises:
        InvalidMessage: not JSON, unknown keys, wrong types, or not exactly one field.
    """
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise InvalidMessage(f"invalid client message: not JSON: {exc}") from None
    setup = obj.get("setup") if isinstance(obj, dict) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(setup, dict) and "realtimeInputConfig" in setup:
                # A setup field the SDK sends (LiveConnectConfig.realtime_input_config,
                # copied as is, so in snake_case, which proto JSON accepts) but its
                # LiveClientSetup type lacks: checked against RealtimeInputConfig.
                setup = dict(setup)
                types.RealtimeInputConfig.model_validate(setup.pop("realtimeInputConfig"))
                obj = {**obj, "setup": setup}
            model = types.LiveClientMessage.model_validate_json(json.dumps(obj))
    except pydantic.ValidationError as exc:
        raise InvalidMessage(f"invalid client message: {exc}") from None
    fields = [name for name in type(model).model_fields if getattr(model, name) is not None]
    if len(fields) != 1:
        raise InvalidMessage(f"a client message sets exactly one field, got {fields}")
    return model


def message_kind(model: types.LiveClientMessage) -> str:
    """The wire (camelCase) name of the field a client message sets: ``"realtimeInput"``."""
    for name, info in type(model).model_fields.items():
        if getattr(model, name) is not None:
            return info.alias or name
    return ""


class _Resampler:
    """PCM16 rate conversion for echo mode (stdlib audioop is enough here)."""

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self._state: Any = None

    def convert(self, data: bytes) -> bytes:
        if self.src == self.dst:
            return data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            out, self._state = audioop.ratecv(data, 2, 1, self.src, self.dst, self._state)
        return out


def _rate_of(mime: str | None) -> int | None:
    if not mime:
        return None
    kind, *params = (p.strip() for p in mime.split(";"))
    if kind.lower() != "audio/pcm":
        return None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip() == "rate" and value.strip().isdigit():
            return int(value)
    return 16000


class FakeGeminiLiveServer:
    """A protocol-faithful local Gemini Live server (see the module docstring).

    Args:
        mode: ``"script"`` or ``"echo"``.
        api_key: the ``x-goog-api-key`` to accept; None accepts any non-empty key.
        strict: validate every sent and received message against the SDK types.
        echo_turn_ms: echo mode ends its model turn after this much audio (ms).
        reject_handshakes: answer this many upcoming handshakes with HTTP
            ``reject_status`` (fault injection for retries).
        reject_status: the status code used by ``reject_handshakes``.
        ca: the ``trustme.CA`` to serve a certificate from (default: a new one).

    Attributes:
        base_url: ``"https://127.0.0.1:P"`` (for ``base_url``).
        ca_file: PEM file of the test CA (for ``SSL_CERT_FILE``).
        handshakes: one dict per handshake (``path``, ``version``, ``api_key``, ``status``).
        setup: the ``setup`` object (wire JSON) of the current session.
        received: every client message after ``setup`` (wire JSON as sent), in order.
        received_audio: every ``realtimeInput.audio`` byte, decoded, in arrival order.
        audio_chunks: ``(bytes, mime_type)`` per audio blob.
        tool_responses: every ``functionResponses`` entry received (wire JSON).
        sent: every server message sent.
        invalid_received: ``(raw, reason)`` per client message that failed validation.
        invalid_sent: ``(message, reason)`` per server message the fake refused to send.
        closed_by_client: ``(code, reason)`` per connection the client closed.
    """

    def __init__(
        self,
        *,
        mode: str = "script",
        api_key: str | None = None,
        strict: bool = True,
        echo_turn_ms: float = 1000.0,
        reject_handshakes: int = 0,
        reject_status: int = 503,
        ca: trustme.CA | None = None,
    ) -> None:
        if mode not in ("script", "echo"):
            raise ValueError("mode must be 'script' or 'echo'")
        self.mode = mode
        self.api_key = api_key
        self.strict = strict
        self.echo_turn_ms = echo_turn_ms
        self.reject_handshakes = reject_handshakes
        self.reject_status = reject_status
        self.ca = ca or trustme.CA()
        self._cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-gemini-")
        self.ca_file = str(Path(self._tmp.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._ws: ServerConnection | None = None
        self._changed = asyncio.Condition()
        self._send_lock = asyncio.Lock()
        self._echo: _Resampler | None = None
        self._echo_ms = 0.0
        self.port = 0
        self.connections = 0
        self.handshakes: list[dict[str, Any]] = []
        self.setup: dict[str, Any] | None = None
        self.received: list[dict[str, Any]] = []
        self.received_audio = bytearray()
        self.audio_chunks: list[tuple[bytes, str]] = []
        self.tool_responses: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.invalid_received: list[tuple[str, str]] = []
        self.invalid_sent: list[tuple[dict[str, Any], str]] = []
        self.closed_by_client: list[tuple[int | None, str]] = []

    # -- lifecycle ----------------------------------------------------------------------
    def server_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting the test CA (for ``async_client_args={"ssl": ...}``)."""
        return ssl.create_default_context(cafile=self.ca_file)

    async def __aenter__(self) -> FakeGeminiLiveServer:
        self._server = await serve(
            self._handler, "127.0.0.1", 0, ssl=self.server_ssl_context(),
            process_request=self._process_request, logger=_log, max_size=2**24,
        )
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._tmp.cleanup()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # -- handshake ------------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        key = request.headers.get("x-goog-api-key")
        version = ""
        if path.startswith(PATH_PREFIX) and path.endswith(PATH_SUFFIX):
            version = path[len(PATH_PREFIX):-len(PATH_SUFFIX)]
        record: dict[str, Any] = {"path": path, "version": version, "api_key": key,
                                  "status": 101}
        self.handshakes.append(record)
        if self.reject_handshakes > 0:
            self.reject_handshakes -= 1
            record["status"] = self.reject_status
            return conn.respond(HTTPStatus(self.reject_status), "rejected by the fake\n")
        if version not in API_VERSIONS:
            record["status"] = 404
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        self._ws = ws
        self.connections += 1
        self.setup = None
        self._echo, self._echo_ms = None, 0.0
        await self._notify()
        try:
            if not await self._handshake(ws):
                return
            async for raw in ws:
                await self._on_client(raw)
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            if rcvd is not None and ws.protocol.close_rcvd_then_sent:
                self.closed_by_client.append((rcvd.code, rcvd.reason))
            if self._ws is ws:
                self._ws = None
            await self._notify()

    async def _handshake(self, ws: ServerConnection) -> bool:
        raw = await ws.recv()
        try:
            model = validate_client_message(raw)
            if model.setup is None:
                raise InvalidMessage("the first client message must be setup")
        except InvalidMessage as exc:
            self.invalid_received.append((str(raw), str(exc)))
            await ws.close(INVALID_ARGUMENT, "Request contains an invalid argument.")
            return False
        self.setup = json.loads(raw)["setup"]
        key = ws.request.headers.get("x-goog-api-key") if ws.request else None
        if not key or (self.api_key is not None and key != self.api_key):
            await ws.close(INVALID_ARGUMENT, BAD_KEY_REASON)
            return False
        await self.send({"setupComplete": {}})
        return True

    # -- sending --------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one server message (wire JSON); validated first in strict mode.

        Raises:
            InvalidMessage: strict mode and ``message`` is not a valid ``LiveServerMessage``.
            ConnectionError: no client is connected.
        """
        if self.strict:
            try:
                validate_server_message(message)
            except InvalidMessage as exc:
                self.invalid_sent.append((message, str(exc)))
                raise
        await self.send_raw(json.dumps(message))
        self.sent.append(message)
        return message

    async def send_raw(self, text: str) -> None:
        """Send a text frame as is (no validation: for malformed-message tests)."""
        ws = self._ws
        if ws is None:
            raise ConnectionError("no client connected to the fake")
        async with self._send_lock:
            await ws.send(text)

    async def close_connection(self, code: int = 1000, reason: str = "") -> None:
        """Close the client's WebSocket from the server side."""
        ws = self._ws
        if ws is not None:
            await ws.close(code, reason)

    # -- waiting --------------------------------------------------------------------------
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, cond: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until ``cond()`` holds (re-checked after every received message)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(cond)

    async def wait_for(self, kind: str, *, count: int = 1, timeout: float = 5.0,
                       predicate: Callable[[dict[str, Any]], bool] | None = None,
                       ) -> dict[str, Any]:
        """Wait for ``count`` client messages of ``kind`` (``"toolResponse"`` ...);
        return the ``count``-th message's ``kind`` object (normalised to camelCase)."""

        def matches() -> list[dict[str, Any]]:
            return [m[kind] for m in self.received
                    if kind in m and (predicate is None or predicate(m[kind]))]

        await self.wait_until(lambda: len(matches()) >= count, timeout=timeout)
        return matches()[count - 1]

    async def wait_connected(self, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self._ws is not None and self.setup is not None,
                              timeout=timeout)

    async def wait_audio(self, nbytes: int, timeout: float = 5.0) -> None:
        """Wait until at least ``nbytes`` of realtime audio were received."""
        await self.wait_until(lambda: len(self.received_audio) >= nbytes, timeout=timeout)

    # -- client messages -----------------------------------------------------------------------
    async def _on_client(self, raw: str | bytes) -> None:
        try:
            try:
                model = validate_client_message(raw)
            except InvalidMessage as exc:
                self.invalid_received.append((str(raw)[:2000], str(exc)))
                if self.strict:
                    await self.close_connection(INVALID_ARGUMENT,
                                                "Request contains an invalid argument.")
                return
            kind = message_kind(model)
            dumped = model.model_dump(mode="json", exclude_none=True, by_alias=True)
            self.received.append(dumped)
            if kind == "realtimeInput":
                await self._on_realtime_input(model.realtime_input)
            elif kind == "toolResponse":
                self.tool_responses += dumped[kind].get("functionResponses") or []
            elif kind == "setup":
                self.invalid_received.append((str(raw)[:2000], "setup sent twice"))
                await self.close_connection(INVALID_ARGUMENT,
                                            "Request contains an invalid argument.")
        finally:
            await self._notify()

    async def _on_realtime_input(self, rt: types.LiveClientRealtimeInput | None) -> None:
        if rt is None:
            return
        blobs = [b for b in [rt.audio, *(rt.media_chunks or [])] if b is not None]
        for blob in blobs:
            rate = _rate_of(blob.mime_type)
            if rate is None or not blob.data:
                continue
            self.received_audio += blob.data
            self.audio_chunks.append((blob.data, blob.mime_type or ""))
            if self.mode == "echo":
                await self._echo_audio(blob.data, rate)
        if rt.audio_stream_end and self.mode == "echo" and self._echo_ms:
            await self.turn_complete()

    async def _echo_audio(self, data: bytes, rate: int) -> None:
        if self._echo is None or self._echo.src != rate:
            self._echo = _Resampler(rate, 24000)
        out = self._echo.convert(data)
        if not out:
            return
        await self.send_model_audio(out)
        self._echo_ms += len(out) / 48.0
        if self._echo_ms >= self.echo_turn_ms:
            await self.turn_complete()

    # -- scripting --------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    async def send_model_audio(self, pcm24k: bytes) -> None:
        """One ``serverContent.modelTurn`` with ``pcm24k`` as 24 kHz inline data."""
        await self.send({"serverContent": {"modelTurn": {"role": "model", "parts": [
            {"inlineData": {"mimeType": OUTPUT_MIME,
                            "data": base64.b64encode(pcm24k).decode("ascii")}}]}}})

    async def turn_complete(self) -> None:
        """``serverContent.generationComplete`` then ``turnComplete``."""
        self._echo_ms = 0.0
        await self.send({"serverContent": {"generationComplete": True}})
        await self.send({"serverContent": {"turnComplete": True}})

    async def play_audio(self, pcm24k: bytes, *, chunk_ms: float = 100.0,
                         transcript: str = "", finish: bool = True) -> None:
        """Send one model turn: audio chunks (24 kHz), an output transcription,
        then ``turnComplete`` when ``finish``."""
        step = max(int(24000 * chunk_ms / 1000) * 2, 2)
        for i in range(0, len(pcm24k), step):
            await self.send_model_audio(pcm24k[i:i + step])
        if transcript:
            await self.output_transcription(transcript)
        if finish:
            await self.turn_complete()

    async def interrupted(self) -> None:
        """``serverContent.interrupted``: the user spoke over the model."""
        self._echo_ms = 0.0
        await self.send({"serverContent": {"interrupted": True}})

    async def input_transcription(self, text: str, finished: bool = True) -> None:
        await self.send({"serverContent": {"inputTranscription": {"text": text,
                                                                  "finished": finished}}})

    async def output_transcription(self, text: str, finished: bool = True) -> None:
        await self.send({"serverContent": {"outputTranscription": {"text": text,
                                                                   "finished": finished}}})

    async def tool_call(self, name: str, args: dict[str, Any] | None = None,
                        call_id: str | None = None) -> str:
        """``toolCall.functionCalls[{id, name, args}]``; returns the call id."""
        call_id = call_id or self._id("function-call")
        await self.send({"toolCall": {"functionCalls": [
            {"id": call_id, "name": name, "args": args or {}}]}})
        return call_id

    async def tool_call_cancellation(self, ids: list[str]) -> None:
        await self.send({"toolCallCancellation": {"ids": list(ids)}})

    async def go_away(self, time_left: str = "10s") -> None:
        await self.send({"goAway": {"timeLeft": time_left}})

    async def voice_activity(self, kind: str, audio_offset: str | None = None) -> None:
        """``voiceActivity`` (``kind``: ``"ACTIVITY_START"`` / ``"ACTIVITY_END"``)."""
        body: dict[str, Any] = {"type": kind}
        if audio_offset is not None:
            body["audioOffset"] = audio_offset
        await self.send({"voiceActivity": body})

    async def user_turn(self, text: str, answer: bytes = b"", *,
                        voice_activity: bool = True) -> None:
        """One user turn as automatic activity detection reports it: ``voiceActivity``
        ``ACTIVITY_START``, the ``inputTranscription``, ``ACTIVITY_END`` (when
        ``voice_activity``), then ``answer`` (24 kHz) as a model turn, when given."""
        if voice_activity:
            await self.voice_activity("ACTIVITY_START")
        await self.input_transcription(text)
        if voice_activity:
            await self.voice_activity("ACTIVITY_END")
        if answer:
            await self.play_audio(answer)
