"""A local stand-in for the OpenAI Realtime API (GA protocol) over real WebSockets.

Follows the GA event names and shapes typed by the official SDK
(``openai.types.realtime.RealtimeServerEvent`` / ``RealtimeClientEvent``). In
strict mode (the default) every event the fake sends is validated against the
SDK's server-event types before it goes out (an invalid one raises
:class:`InvalidEvent`), and every client event it receives is validated against
the client-event types (an invalid one is recorded in ``invalid_received`` and
answered with an ``error`` event, as the real server does). Unknown keys count as
invalid, except the ``id``/``object``/``expires_at`` the real server adds to
sessions.

Endpoint: ``ws://127.0.0.1:P/v1/realtime?model=M`` with ``Authorization: Bearer K``
(anything else: 401 / 404 on the handshake). On connect it sends
``session.created``; it answers ``session.update`` (``session.updated`` with the
merged session), ``input_audio_buffer.append``/``clear``/``commit``,
``conversation.item.create``/``truncate``, ``response.create``/``cancel``.

Modes:
    ``"script"`` (default): the test drives the server with :meth:`play_audio`,
    :meth:`speech_started`, :meth:`user_turn` (a whole server-VAD user turn and
    the response it creates), :meth:`function_call` ...; ``response.create`` gets
    the next queued scripted reply (:meth:`queue_response`) or an empty response.
    ``"echo"``: every appended audio chunk is sent straight back as
    ``response.output_audio.delta`` (converted to the current output format) in an
    open audio response; the response is closed (``response.output_audio.done`` ...
    ``response.done``) after ``echo_turn_ms`` of audio, on
    ``input_audio_buffer.commit``/``clear``, on a format change and on disconnect.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

_SERVER_EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)
_CLIENT_EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeClientEvent)
#: Keys the real server puts in sessions that the SDK types do not declare.
_SESSION_EXTRAS = frozenset({"id", "object", "expires_at"})


class _RedactAuthorization(logging.Filter):
    """Keeps bearer tokens out of the websockets handshake debug log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "authorization":
            record.args = (args[0], "[redacted]")
        return True


_log = logging.getLogger("tests.fakes.fake_openai_realtime")
_log.addFilter(_RedactAuthorization())


class InvalidEvent(AssertionError):
    """An event does not validate against the SDK's GA Realtime types."""


def _unknown_keys(obj: Any, path: str = "") -> list[str]:
    """Paths of keys a validated SDK model did not declare (recursively)."""
    found: list[str] = []
    if isinstance(obj, pydantic.BaseModel):
        extra = obj.model_extra or {}
        allowed = _SESSION_EXTRAS if path.endswith("session") else frozenset()
        found += [f"{path}.{k}".lstrip(".") for k in extra if k not in allowed]
        for name in type(obj).model_fields:
            found += _unknown_keys(getattr(obj, name), f"{path}.{name}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found += _unknown_keys(v, f"{path}[{i}]")
    return found


def validate_server_event(event: dict[str, Any]) -> Any:
    """Parse ``event`` as a GA ``RealtimeServerEvent``; return the SDK model.

    Raises:
        InvalidEvent: it does not validate, or carries keys the type lacks.
    """
    try:
        model = _SERVER_EVENTS.validate_python(event)
    except pydantic.ValidationError as exc:
        raise InvalidEvent(f"invalid server event {event.get('type')!r}: {exc}") from None
    unknown = _unknown_keys(model)
    if unknown:
        raise InvalidEvent(f"server event {event.get('type')!r} has unknown keys {unknown}")
    return model


def validate_client_event(event: dict[str, Any]) -> Any:
    """Parse ``event`` as a GA ``RealtimeClientEvent``; return the SDK model.

    Raises:
        InvalidEvent: it does not validate, or carries keys the type lacks.
    """
    try:
        model = _CLIENT_EVENTS.validate_python(event)
    except pydantic.ValidationError as exc:
        raise InvalidEvent(f"invalid client event {event.get('type')!r}: {exc}") from None
    unknown = _unknown_keys(model)
    if unknown:
        raise InvalidEvent(f"client event {event.get('type')!r} has unknown keys {unknown}")
    return model


# -- audio helpers (the fake converts for echo; stdlib audioop is enough here) -----
def _fmt_key(fmt: dict[str, Any]) -> tuple[str, int]:
    kind = fmt.get("type", "audio/pcm")
    return kind, (int(fmt.get("rate") or 24000) if kind == "audio/pcm" else 8000)


def _duration_ms(fmt: dict[str, Any], nbytes: int) -> float:
    kind, rate = _fmt_key(fmt)
    width = 2 if kind == "audio/pcm" else 1
    return nbytes * 1000.0 / (rate * width)


class _Converter:
    """GA format -> GA format, for echo mode (PCM16 24k <-> G.711 8k)."""

    def __init__(self, src: dict[str, Any], dst: dict[str, Any]) -> None:
        self.src, self.dst = _fmt_key(src), _fmt_key(dst)
        self._state: Any = None

    def convert(self, data: bytes) -> bytes:
        if self.src == self.dst:
            return data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            kind, rate = self.src
            pcm = {"audio/pcmu": audioop.ulaw2lin, "audio/pcma": audioop.alaw2lin}.get(
                kind, lambda b, w: b)(data, 2)
            if rate != self.dst[1]:
                pcm, self._state = audioop.ratecv(pcm, 2, 1, rate, self.dst[1], self._state)
            enc = {"audio/pcmu": audioop.lin2ulaw, "audio/pcma": audioop.lin2alaw}.get(
                self.dst[0])
            return enc(pcm, 2) if enc else pcm


#: Session keys whose objects a session.update replaces whole (as the real server does).
_REPLACED_WHOLE = frozenset({"format", "turn_detection", "noise_reduction", "transcription"})


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in _REPLACED_WHOLE:
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass
class _Response:
    """One response the fake is producing."""

    id: str
    kind: str  # "audio" | "function_call" | "empty"
    item_id: str = ""
    audio_ms: float = 0.0
    transcript: str = ""
    cancelled: bool = False
    items: list[dict[str, Any]] = field(default_factory=list)


class FakeRealtimeServer:
    """A protocol-faithful local OpenAI Realtime GA server (see the module docstring).

    Args:
        mode: ``"script"`` or ``"echo"``.
        api_key: the bearer token to accept; None accepts any non-empty bearer.
        strict: validate every sent and received event against the SDK types.
        echo_turn_ms: echo mode closes its response after this much audio (ms).
        reject_handshakes: answer this many upcoming handshakes with HTTP
            ``reject_status`` (fault injection for retries).
        reject_status: the status code used by ``reject_handshakes``.

    Attributes:
        base_url: ``"http://127.0.0.1:P/v1"`` (for ``OPENAI_BASE_URL``).
        ws_url: ``"ws://127.0.0.1:P/v1"`` (for ``websocket_base_url``).
        handshakes: one dict per accepted or rejected handshake
            (``path``, ``query``, ``authorization``, ``status``).
        received_events: every client event, in order.
        received_audio: every appended audio byte, decoded, in arrival order.
        audio_chunks: ``(bytes, format)`` per ``input_audio_buffer.append``.
        input_format / output_format: the session's current GA format objects.
        session: the current session object.
        truncates: every ``conversation.item.truncate`` received.
        sent_events: every server event sent.
        sent_raw: every frame sent as is with :meth:`send_raw`.
        invalid_received: ``(event, reason)`` per client event that failed validation.
        invalid_sent: ``(event, reason)`` per server event the fake refused to send
            (a bug in the fake or a test script; :meth:`send` also raised).
        items: conversation items by id (assistant audio items carry ``audio_ms``).
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
    ) -> None:
        if mode not in ("script", "echo"):
            raise ValueError("mode must be 'script' or 'echo'")
        self.mode = mode
        self.api_key = api_key
        self.strict = strict
        self.echo_turn_ms = echo_turn_ms
        self.reject_handshakes = reject_handshakes
        self.reject_status = reject_status
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._ws: ServerConnection | None = None
        self._changed = asyncio.Condition()
        self._active: _Response | None = None
        self._echo_conv: _Converter | None = None
        self._scripted: list[Callable[[FakeRealtimeServer], Any]] = []
        self._send_lock = asyncio.Lock()
        self.port = 0
        self.handshakes: list[dict[str, Any]] = []
        self.connections = 0
        self.received_events: list[dict[str, Any]] = []
        self.received_audio = bytearray()
        self.audio_chunks: list[tuple[bytes, dict[str, Any]]] = []
        self.truncates: list[dict[str, Any]] = []
        self.sent_events: list[dict[str, Any]] = []
        self.sent_raw: list[str | bytes] = []
        self.invalid_received: list[tuple[dict[str, Any], str]] = []
        self.invalid_sent: list[tuple[dict[str, Any], str]] = []
        self.items: dict[str, dict[str, Any]] = {}
        self.closed_by_client: list[tuple[int | None, str]] = []
        self.session: dict[str, Any] = {}
        self._reset_session("gpt-realtime")

    # -- lifecycle ----------------------------------------------------------------
    async def __aenter__(self) -> FakeRealtimeServer:
        self._server = await serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request, logger=_log
        )
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def input_format(self) -> dict[str, Any]:
        return self.session["audio"]["input"]["format"]

    @property
    def output_format(self) -> dict[str, Any]:
        return self.session["audio"]["output"]["format"]

    def _reset_session(self, model: str) -> None:
        self.session = {
            "type": "realtime",
            "object": "realtime.session",
            "id": f"sess_{next(self._ids)}",
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 200,
                        "create_response": True,
                        "interrupt_response": True,
                        "idle_timeout_ms": None,
                    },
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": "marin",
                    "speed": 1.0,
                },
            },
        }

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    # -- handshake -----------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        auth = request.headers.get("Authorization")
        record = {"path": parts.path, "query": query, "authorization": auth, "status": 101}
        self.handshakes.append(record)
        if self.reject_handshakes > 0:
            self.reject_handshakes -= 1
            record["status"] = self.reject_status
            return conn.respond(HTTPStatus(self.reject_status), "rejected by the fake\n")
        if parts.path.rstrip("/") != "/v1/realtime":
            record["status"] = 404
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        token = auth[7:] if auth and auth.startswith("Bearer ") else ""
        if not token or (self.api_key is not None and token != self.api_key):
            record["status"] = 401
            return conn.respond(HTTPStatus.UNAUTHORIZED, "invalid api key\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path if ws.request else "")
        model = parse_qs(parts.query).get("model", ["gpt-realtime"])[-1]
        self._reset_session(model)
        self._active = None
        self._ws = ws
        self.connections += 1
        await self._notify()
        try:
            await self.send({"type": "session.created", "session": self.session})
            async for message in ws:
                await self._on_client(json.loads(message))
        except ConnectionClosed:
            pass
        finally:
            if ws.close_code is not None:
                self.closed_by_client.append((ws.close_code, ws.close_reason or ""))
            if self._ws is ws:
                self._ws = None
                self._active = None
            await self._notify()

    # -- sending -------------------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send one server event (``event_id`` added); validated first in strict mode.

        Raises:
            InvalidEvent: strict mode and ``event`` is not a valid GA server event.
            ConnectionError: no client is connected.
        """
        event = {"event_id": self._id("event"), **event}
        if self.strict:
            try:
                validate_server_event(event)
            except InvalidEvent as exc:
                self.invalid_sent.append((event, str(exc)))
                raise
        ws = self._ws
        if ws is None:
            raise ConnectionError("no client connected to the fake")
        async with self._send_lock:
            self.sent_events.append(event)
            await ws.send(json.dumps(event))
        return event

    async def send_raw(self, text: str | bytes) -> None:
        """Send one frame as is, unvalidated (fault injection: malformed JSON, a
        non-object, a binary frame); recorded in ``sent_raw``.

        Raises:
            ConnectionError: no client is connected.
        """
        ws = self._ws
        if ws is None:
            raise ConnectionError("no client connected to the fake")
        async with self._send_lock:
            self.sent_raw.append(text)
            await ws.send(text)

    async def send_error(
        self, message: str, *, code: str | None = None,
        type: str = "invalid_request_error", event_id: str | None = None,
    ) -> None:
        """Send an ``error`` event."""
        await self.send({"type": "error", "error": {
            "type": type, "code": code, "message": message, "param": None,
            "event_id": event_id,
        }})

    async def close_connection(self, code: int = 1000, reason: str = "") -> None:
        """Close the client's WebSocket from the server side."""
        ws = self._ws
        if ws is not None:
            await ws.close(code, reason)

    # -- waiting -------------------------------------------------------------------
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(
        self,
        event_type: str,
        *,
        timeout: float = 5.0,
        count: int = 1,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Wait until ``count`` client events of ``event_type`` (matching
        ``predicate``) were received; return the ``count``-th.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """

        def matches() -> list[dict[str, Any]]:
            return [e for e in self.received_events
                    if e.get("type") == event_type and (predicate is None or predicate(e))]

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(matches()) >= count)
        return matches()[count - 1]

    async def wait_until(self, cond: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until ``cond()`` holds (re-checked after every received event)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(cond)

    async def wait_connected(self, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self._ws is not None, timeout=timeout)

    async def wait_audio(self, nbytes: int, timeout: float = 5.0) -> None:
        """Wait until at least ``nbytes`` of appended audio were received."""
        await self.wait_until(lambda: len(self.received_audio) >= nbytes, timeout=timeout)

    # -- client events ---------------------------------------------------------------
    async def _on_client(self, event: Any) -> None:
        if not isinstance(event, dict):
            await self.send_error("expected a JSON object", code="invalid_json")
            return
        self.received_events.append(event)
        try:
            if self.strict:
                try:
                    validate_client_event(event)
                except InvalidEvent as exc:
                    self.invalid_received.append((event, str(exc)))
                    await self.send_error(str(exc)[:500], code="invalid_value",
                                          event_id=event.get("event_id"))
                    return
            handler = getattr(self, "_c_" + str(event.get("type", "")).replace(".", "_"), None)
            if handler is None:
                await self.send_error(f"Invalid value: '{event.get('type')}'",
                                      code="invalid_value", event_id=event.get("event_id"))
                return
            await handler(event)
        finally:
            await self._notify()

    async def _c_session_update(self, event: dict[str, Any]) -> None:
        update = event.get("session") or {}
        if update.get("type") != "realtime":
            await self.send_error("session.type must be 'realtime'", code="invalid_value",
                                  event_id=event.get("event_id"))
            return
        old_in, old_out = self.input_format, self.output_format
        self.session = _deep_merge(self.session, update)
        if (old_in, old_out) != (self.input_format, self.output_format):
            self._echo_conv = None
            if self._active is not None and self.mode == "echo":
                await self._finish(self._active)
        await self.send({"type": "session.updated", "session": self.session})

    async def _c_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        data = base64.b64decode(event["audio"])
        self.received_audio += data
        self.audio_chunks.append((data, dict(self.input_format)))
        if self.mode == "echo" and data:
            await self._echo(data)

    async def _c_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        if self.mode == "echo" and self._active is not None:
            await self._finish(self._active)
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _c_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if self.mode == "echo" and self._active is not None:
            await self._finish(self._active)
        item_id = self._id("item")
        self.items[item_id] = {"id": item_id, "type": "message", "role": "user"}
        await self.send({"type": "input_audio_buffer.committed", "item_id": item_id,
                         "previous_item_id": None})

    async def _c_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = {**event["item"]}
        item.setdefault("id", self._id("item"))
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        self.items[item["id"]] = item
        prev = event.get("previous_item_id")
        await self.send({"type": "conversation.item.added", "item": item,
                         "previous_item_id": prev})
        await self.send({"type": "conversation.item.done", "item": item,
                         "previous_item_id": prev})

    async def _c_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        self.truncates.append(event)
        item = self.items.get(event["item_id"])
        if item is None or item.get("role") != "assistant":
            await self.send_error(f"Item {event['item_id']!r} not found or not assistant audio",
                                  code="item_not_found", event_id=event.get("event_id"))
            return
        end = event["audio_end_ms"]
        if end > item.get("audio_ms", 0.0) + 1:
            await self.send_error(
                f"audio_end_ms {end} is longer than the item's audio "
                f"({item.get('audio_ms', 0.0):.0f} ms)",
                code="invalid_value", event_id=event.get("event_id"))
            return
        item["truncated_at_ms"] = end
        await self.send({"type": "conversation.item.truncated", "item_id": event["item_id"],
                         "content_index": event["content_index"], "audio_end_ms": end})

    async def _c_response_create(self, event: dict[str, Any]) -> None:
        if self._scripted:
            await _maybe_await(self._scripted.pop(0)(self))
            return
        resp = await self._open("empty")
        await self._finish(resp)

    async def _c_response_cancel(self, event: dict[str, Any]) -> None:
        active = self._active
        if active is None or (event.get("response_id") not in (None, active.id)):
            await self.send_error("Cancellation failed: no active response found",
                                  code="response_cancel_not_active",
                                  event_id=event.get("event_id"))
            return
        await self._finish(active, status="cancelled", reason="client_cancelled")

    # -- response framing -----------------------------------------------------------
    def _response_obj(self, resp: _Response, status: str,
                      reason: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": resp.id,
            "object": "realtime.response",
            "status": status,
            "output": resp.items,
            "output_modalities": ["audio"],
            "conversation_id": "conv_fake",
            "audio": {"output": {"format": self.output_format,
                                 "voice": self.session["audio"]["output"].get("voice")}},
        }
        if status != "in_progress":
            details: dict[str, Any] = {"type": status}
            if reason:
                details["reason"] = reason
            obj["status_details"] = details
        return obj

    async def _open(self, kind: str, **item_fields: Any) -> _Response:
        if self._active is not None:
            await self._finish(self._active)
        resp = _Response(id=self._id("resp"), kind=kind)
        self._active = resp
        await self.send({"type": "response.created",
                         "response": self._response_obj(resp, "in_progress")})
        if kind == "empty":
            return resp
        resp.item_id = self._id("item")
        if kind == "audio":
            item: dict[str, Any] = {"id": resp.item_id, "object": "realtime.item",
                                    "type": "message", "role": "assistant",
                                    "status": "in_progress", "content": []}
        else:
            item = {"id": resp.item_id, "object": "realtime.item", "type": "function_call",
                    "status": "in_progress", "arguments": "", **item_fields}
        self.items[resp.item_id] = {**item, "audio_ms": 0.0}
        await self.send({"type": "response.output_item.added", "response_id": resp.id,
                         "output_index": 0, "item": item})
        await self.send({"type": "conversation.item.added", "item": item,
                         "previous_item_id": None})
        if kind == "audio":
            await self.send({"type": "response.content_part.added", "response_id": resp.id,
                             "item_id": resp.item_id, "output_index": 0, "content_index": 0,
                             "part": {"type": "audio", "transcript": ""}})
        return resp

    async def _audio_delta(self, resp: _Response, data: bytes) -> None:
        resp.audio_ms += _duration_ms(self.output_format, len(data))
        self.items[resp.item_id]["audio_ms"] = resp.audio_ms
        await self.send({"type": "response.output_audio.delta", "response_id": resp.id,
                         "item_id": resp.item_id, "output_index": 0, "content_index": 0,
                         "delta": base64.b64encode(data).decode("ascii")})

    async def _finish(self, resp: _Response, status: str = "completed",
                      reason: str | None = None) -> None:
        if self._active is resp:
            self._active = None
        resp.cancelled = status == "cancelled"
        item_status = "completed" if status == "completed" else "incomplete"
        if resp.kind == "audio":
            base = {"response_id": resp.id, "item_id": resp.item_id, "output_index": 0,
                    "content_index": 0}
            await self.send({"type": "response.output_audio.done", **base})
            await self.send({"type": "response.output_audio_transcript.done", **base,
                             "transcript": resp.transcript})
            await self.send({"type": "response.content_part.done", **base,
                             "part": {"type": "audio", "transcript": resp.transcript}})
            item: dict[str, Any] = {
                "id": resp.item_id, "object": "realtime.item", "type": "message",
                "role": "assistant", "status": item_status,
                "content": [{"type": "output_audio", "transcript": resp.transcript}]}
        elif resp.kind == "function_call":
            stored = self.items[resp.item_id]
            item = {k: stored[k] for k in ("id", "object", "type", "name", "call_id",
                                           "arguments")}
            item["status"] = item_status
        else:
            item = {}
        if item:
            self.items[resp.item_id].update(status=item_status)
            resp.items = [item]
            await self.send({"type": "response.output_item.done", "response_id": resp.id,
                             "output_index": 0, "item": item})
            await self.send({"type": "conversation.item.done", "item": item,
                             "previous_item_id": None})
        await self.send({"type": "response.done",
                         "response": self._response_obj(resp, status, reason)})

    async def _echo(self, data: bytes) -> None:
        if self._echo_conv is None:
            self._echo_conv = _Converter(self.input_format, self.output_format)
        out = self._echo_conv.convert(data)
        resp = self._active
        if resp is None or resp.kind != "audio":
            resp = await self._open("audio")
        if out:
            await self._audio_delta(resp, out)
        if resp.audio_ms >= self.echo_turn_ms:
            await self._finish(resp)

    # -- scripting ------------------------------------------------------------------
    def queue_response(self, reply: Callable[[FakeRealtimeServer], Any]) -> None:
        """Answer the next ``response.create`` by calling ``reply(fake)`` (may be async)."""
        self._scripted.append(reply)

    async def play_audio(
        self,
        audio: bytes,
        *,
        chunk_ms: float = 100.0,
        realtime: bool = False,
        transcript: str = "",
        finish: bool = True,
    ) -> str:
        """Send one assistant audio response: ``response.created`` ... deltas ... ``response.done``.

        Args:
            audio: the whole answer in the session's current output format.
            chunk_ms: audio per ``response.output_audio.delta`` (ms).
            realtime: sleep ``chunk_ms`` between deltas (stops early if cancelled).
            transcript: sent as one ``response.output_audio_transcript.delta``.
            finish: close the response (False: leave it in progress; see
                :meth:`finish_response`).

        Returns:
            The assistant item id.
        """
        resp = await self._open("audio")
        resp.transcript = transcript
        if transcript:
            await self.send({"type": "response.output_audio_transcript.delta",
                             "response_id": resp.id, "item_id": resp.item_id,
                             "output_index": 0, "content_index": 0, "delta": transcript})
        kind, rate = _fmt_key(self.output_format)
        step = max(int(rate * chunk_ms / 1000) * (2 if kind == "audio/pcm" else 1), 1)
        for i in range(0, len(audio), step):
            if resp.cancelled:
                break
            await self._audio_delta(resp, audio[i:i + step])
            if realtime:
                await asyncio.sleep(chunk_ms / 1000)
        if finish and not resp.cancelled:
            await self._finish(resp)
        return resp.item_id

    async def finish_response(self) -> None:
        """Complete the response left open by ``play_audio(finish=False)``."""
        if self._active is not None:
            await self._finish(self._active)

    async def speech_started(self, audio_start_ms: int = 0, item_id: str | None = None) -> str:
        """Send ``input_audio_buffer.speech_started``; as the real server VAD does
        (``interrupt_response``), an in-progress response is then cancelled.

        Returns:
            The user item id the event names.
        """
        item_id = item_id or self._id("item")
        await self.send({"type": "input_audio_buffer.speech_started",
                         "audio_start_ms": int(audio_start_ms), "item_id": item_id})
        td = self.session["audio"]["input"].get("turn_detection") or {}
        if self._active is not None and td.get("interrupt_response", True):
            await self._finish(self._active, status="cancelled", reason="turn_detected")
        return item_id

    async def speech_stopped(self, audio_end_ms: int, item_id: str) -> None:
        """Send ``input_audio_buffer.speech_stopped``."""
        await self.send({"type": "input_audio_buffer.speech_stopped",
                         "audio_end_ms": int(audio_end_ms), "item_id": item_id})

    async def user_turn(self, *, audio_start_ms: int = 0, audio_end_ms: int = 1000,
                        reply: Callable[[FakeRealtimeServer], Any] | None = None) -> str:
        """One user turn as server VAD reports it: ``speech_started`` (cancelling an
        in-progress response), ``speech_stopped``, ``input_audio_buffer.committed``,
        the user item (``conversation.item.added`` / ``done``), then, when the
        session's ``turn_detection.create_response`` is on, the response the server
        creates by itself: ``reply(fake)`` or the next :meth:`queue_response` reply
        (an empty response when there is none).

        Returns:
            The user item id.
        """
        item_id = await self.speech_started(audio_start_ms)
        await self.speech_stopped(audio_end_ms, item_id)
        await self.send({"type": "input_audio_buffer.committed", "item_id": item_id,
                         "previous_item_id": None})
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self.items[item_id] = item
        await self.send({"type": "conversation.item.added", "item": item,
                         "previous_item_id": None})
        await self.send({"type": "conversation.item.done", "item": item,
                         "previous_item_id": None})
        td = self.session["audio"]["input"].get("turn_detection") or {}
        if td.get("create_response", True):
            if reply is None and self._scripted:
                reply = self._scripted.pop(0)
            if reply is not None:
                await _maybe_await(reply(self))
            else:
                await self._finish(await self._open("empty"))
        return item_id

    async def function_call(self, name: str, arguments: str | dict[str, Any],
                            call_id: str | None = None) -> str:
        """Send a response holding one function call (arguments delta + done).

        Returns:
            The ``call_id``.
        """
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call_id = call_id or self._id("call")
        resp = await self._open("function_call", name=name, call_id=call_id)
        base = {"response_id": resp.id, "item_id": resp.item_id, "output_index": 0,
                "call_id": call_id}
        await self.send({"type": "response.function_call_arguments.delta", **base,
                         "delta": args})
        self.items[resp.item_id]["arguments"] = args
        await self.send({"type": "response.function_call_arguments.done", **base,
                         "name": name, "arguments": args})
        await self._finish(resp)
        return call_id

    async def input_transcript(self, transcript: str, item_id: str | None = None) -> None:
        """Send ``conversation.item.input_audio_transcription.completed``."""
        await self.send({"type": "conversation.item.input_audio_transcription.completed",
                         "item_id": item_id or self._id("item"), "content_index": 0,
                         "transcript": transcript,
                         "usage": {"type": "duration", "seconds": 1.0}})


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value
