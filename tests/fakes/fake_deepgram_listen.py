"""A local stand-in for Deepgram's live transcription WebSocket, ``/v1/listen``.

Speaks the protocol of https://developers.deepgram.com/reference/speech-to-text/listen-streaming
over real WebSockets (``websockets`` server), checked against the official
``deepgram-sdk`` (v7) types:

* Handshake: ``ws://127.0.0.1:P/v1/listen?model=...&encoding=...&sample_rate=...`` with
  ``Authorization: Token <key>``. A wrong or missing key is answered 401 with Deepgram's
  ``dg-error`` header (JSON ``err_code``/``err_msg``/``request_id``, also the body) and
  ``dg-request-id``; another path 404. Query keys must be parameters of the SDK's
  ``listen.v1.connect`` and values its literals where it declares them (``model`` a
  ``ListenV1Model``, ``encoding`` a ``ListenV1Encoding``, booleans ``"true"``/``"false"``);
  ``sample_rate`` is required with ``encoding``. Anything else is refused 400 with a
  ``dg-error`` and recorded in :attr:`invalid_handshakes`. The fake measures audio in
  ``linear16``, ``mulaw`` and ``alaw``; other encodings are refused as unsupported.
* Client messages: binary audio; JSON ``KeepAlive``, ``Finalize``, ``CloseStream``,
  ``Configure``, each validated against the SDK's ``ListenV1KeepAlive`` ... (no unknown
  keys). An invalid one is recorded in :attr:`invalid_received` and answered with an
  ``Error`` (``variant: "SchemaError"``), as Deepgram does.
* Server messages: ``Results`` (interim: ``is_final: false``; final segments:
  ``is_final: true``, ``speech_final`` on the last one at ``CloseStream``,
  ``from_finalize`` after ``Finalize``), ``Metadata`` and ``Error``, each validated
  against the SDK's server types (``ListenV1Results`` ...; no unknown keys) before it
  goes out (:class:`InvalidMessage` otherwise: a fake bug).
* ``CloseStream``: the remaining segments are sent as finals, then ``Metadata``, then
  the server closes with 1000. No audio or KeepAlive for ``idle_timeout_s`` (Deepgram:
  10 s): close 1011 ``NET-0001``.

Transcripts are scripted, not recognised: each connection takes the next
:class:`Utterance` from :attr:`utterances` (default: :attr:`transcript` at
:attr:`confidence`). Interim ``Results`` reveal the current segment word by word every
``interim_every_ms`` of audio received; with ``final_every_ms`` segment k (all but the
last) is finalised once ``(k + 1) * final_every_ms`` of audio arrived, like Deepgram's
endpointing. Word timings are spread over the audio received.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import typing
import uuid
import warnings
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pydantic
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes.fake_deepgram_agent import InvalidMessage, validate_typed

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from deepgram.listen.v1 import types as dgt
    from deepgram.listen.v1.raw_client import AsyncRawV1Client
    from deepgram.listen.v1.socket_client import V1SocketClientResponse

PATH = "/v1/listen"


def _type_literal(cls: type[pydantic.BaseModel]) -> str:
    return typing.get_args(cls.model_fields["type"].annotation)[0]


#: Server message type -> SDK class (from the SDK's own response union).
SERVER_TYPES: dict[str, type[pydantic.BaseModel]] = {
    _type_literal(c): c for c in typing.get_args(V1SocketClientResponse)}
#: Client message type -> SDK class.
CLIENT_TYPES: dict[str, type[pydantic.BaseModel]] = {
    "KeepAlive": dgt.ListenV1KeepAlive, "Finalize": dgt.ListenV1Finalize,
    "CloseStream": dgt.ListenV1CloseStream, "Configure": dgt.ListenV1Configure}
_HINTS = typing.get_type_hints(AsyncRawV1Client.connect.__wrapped__)  # type: ignore[attr-defined]
#: Query parameters the SDK's ``listen.v1.connect`` can send.
QUERY_KEYS = frozenset(_HINTS) - {"authorization", "request_options", "return"}
#: Bytes per sample of the encodings the fake measures.
SAMPLE_WIDTH = {"linear16": 2, "mulaw": 1, "alaw": 1}


def _literals(hint: Any) -> frozenset[str] | None:
    """The string literals a ``Union[Literal[...], Any]`` hint declares, else None."""
    for arg in typing.get_args(hint) or ():
        if typing.get_origin(arg) is typing.Literal:
            return frozenset(str(a) for a in typing.get_args(arg))
    return None


def validate_server_message(msg: dict[str, Any]) -> Any:
    """Parse ``msg`` as an SDK server message (``ListenV1Results`` ...); return the model.

    Raises:
        InvalidMessage: unknown type, invalid, or keys the type lacks.
    """
    return validate_typed(msg, SERVER_TYPES, "server")


def validate_client_message(msg: dict[str, Any]) -> Any:
    """Parse ``msg`` as an SDK client message (``CloseStream`` ...); return the model.

    Raises:
        InvalidMessage: unknown type, invalid, or keys the type lacks.
    """
    return validate_typed(msg, CLIENT_TYPES, "client")


def check_query(query: dict[str, str]) -> list[str]:
    """Problems with a ``/v1/listen`` query (empty when valid)."""
    problems = []
    for key, value in query.items():
        if key not in QUERY_KEYS:
            problems.append(f"unknown parameter {key!r}")
            continue
        allowed = _literals(_HINTS[key])
        if allowed is not None and value not in allowed:
            problems.append(f"{key}={value!r} is not one of {sorted(allowed)}")
    if "model" not in query:
        problems.append("model is required")
    if "encoding" in query:
        if not query.get("sample_rate", "").isdigit():
            problems.append("sample_rate (an integer) is required with encoding")
    for key in ("channels", "sample_rate", "utterance_end_ms"):
        if key in query and not query[key].isdigit():
            problems.append(f"{key}={query[key]!r} is not an integer")
    return problems


@dataclass
class Utterance:
    """What the fake "recognises" on one connection.

    Attributes:
        segments: ``(transcript, confidence)`` per final segment, in order.
        final_every_ms: finalise segment k (but the last) after ``(k + 1) *
            final_every_ms`` ms of audio; None: every segment at Finalize/CloseStream.
    """

    segments: list[tuple[str, float]]
    final_every_ms: float | None = None


@dataclass
class ListenConnection:
    """One ``/v1/listen`` connection as the fake saw it."""

    query: dict[str, str]
    authorization: str | None
    request_id: str
    audio: bytearray = field(default_factory=bytearray)
    audio_messages: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_stream: bool = False
    closed: tuple[int, str] | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.query.get("sample_rate", "16000"))

    @property
    def audio_s(self) -> float:
        """Seconds of audio received."""
        width = SAMPLE_WIDTH.get(self.query.get("encoding", "linear16"), 2)
        channels = int(self.query.get("channels", "1"))
        return len(self.audio) / (self.sample_rate * width * channels)


class FakeDeepgramListen:
    """A protocol-faithful local Deepgram ``/v1/listen`` server.

    Args:
        api_key: the key ``Authorization: Token <key>`` must carry.
        transcript: the default utterance's transcript.
        confidence: the default utterance's confidence.
        interim_every_ms: audio between interim ``Results`` (with ``interim_results``).
        idle_timeout_s: close 1011 ``NET-0001`` after this long without audio/KeepAlive.

    Attributes:
        connections: every accepted connection, in order.
        handshakes: ``(path, query, authorization, status)`` per handshake.
        invalid_handshakes: ``(query, problems)`` per refused query.
        invalid_received: ``(message, reason)`` per invalid client message.
        unauthorized: handshakes answered 401.
        utterances: scripted :class:`Utterance` per future connection.
    """

    def __init__(self, *, api_key: str = "dg-test-key-listen", transcript: str = "hello world",
                 confidence: float = 0.97, interim_every_ms: float = 300,
                 idle_timeout_s: float = 10.0) -> None:
        self.api_key = api_key
        self.transcript = transcript
        self.confidence = confidence
        self.interim_every_ms = interim_every_ms
        self.idle_timeout_s = idle_timeout_s
        self.utterances: deque[Utterance] = deque()
        self.connections: list[ListenConnection] = []
        self.handshakes: list[tuple[str, dict[str, str], str | None, int]] = []
        self.invalid_handshakes: list[tuple[dict[str, str], list[str]]] = []
        self.invalid_received: list[tuple[Any, str]] = []
        self.unauthorized = 0
        self._drops: deque[tuple[int, str]] = deque()
        self._server: Server | None = None
        self._changed = asyncio.Condition()
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``ws://127.0.0.1:P`` (what the SDK's environment takes; it appends /v1/listen)."""
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeDeepgramListen:
        self._server = await serve(self._handler, "127.0.0.1", 0,
                                   process_request=self._process_request)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # -- scripting --------------------------------------------------------------------
    def script(self, *segments: tuple[str, float], final_every_ms: float | None = None) -> None:
        """Queue what the next connection recognises: ``(transcript, confidence)`` segments."""
        self.utterances.append(Utterance(list(segments), final_every_ms))

    def drop_next(self, code: int = 1011, reason: str = "NET-0000: internal error") -> None:
        """Close the next connection with ``code``/``reason`` on its first audio."""
        self._drops.append((code, reason))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, cond: typing.Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until ``cond()`` holds (re-checked after every message)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(cond)

    # -- handshake ----------------------------------------------------------------------
    @staticmethod
    def _refuse(status: int, err_code: str, err_msg: str, request_id: str) -> Response:
        body = json.dumps({"err_code": err_code, "err_msg": err_msg, "request_id": request_id})
        data = body.encode()
        headers = Headers([("Content-Type", "application/json"), ("dg-error", body),
                           ("dg-request-id", request_id), ("Content-Length", str(len(data))),
                           ("Connection", "close")])
        return Response(status, HTTPStatus(status).phrase, headers, data)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        auth = request.headers.get("Authorization")
        rid = str(uuid.uuid4())
        status = 101
        response: Response | None = None
        if parts.path.rstrip("/") != PATH:
            status = 404
            response = self._refuse(404, "NOT_FOUND", f"no route {parts.path}", rid)
        elif auth != f"Token {self.api_key}":
            status = 401
            self.unauthorized += 1
            response = self._refuse(401, "INVALID_AUTH", "Invalid credentials.", rid)
        else:
            problems = check_query(query)
            enc = query.get("encoding", "linear16")
            if not problems and enc not in SAMPLE_WIDTH:
                problems.append(f"encoding {enc!r} is valid but this fake measures only "
                                f"{sorted(SAMPLE_WIDTH)}")
            if problems:
                status = 400
                self.invalid_handshakes.append((query, problems))
                response = self._refuse(400, "Bad Request", "; ".join(problems), rid)
        self.handshakes.append((parts.path, query, auth, status))
        if response is None:
            conn.request_id = rid  # type: ignore[attr-defined]
            conn.listen_query = query  # type: ignore[attr-defined]
        return response

    # -- session ------------------------------------------------------------------------
    async def _send(self, ws: ServerConnection, c: ListenConnection, msg: dict[str, Any]) -> None:
        validate_server_message(msg)
        c.sent.append(msg)
        await ws.send(json.dumps(msg))

    async def _handler(self, ws: ServerConnection) -> None:
        c = ListenConnection(query=getattr(ws, "listen_query", {}),
                             authorization=ws.request.headers.get("Authorization")
                             if ws.request else None,
                             request_id=getattr(ws, "request_id", str(uuid.uuid4())))
        self.connections.append(c)
        await self._notify()
        utt = self.utterances.popleft() if self.utterances else Utterance(
            [(self.transcript, self.confidence)])
        state = _State(utt)
        drop = self._drops.popleft() if self._drops else None
        interim = c.query.get("interim_results") == "true"
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout_s):
                        data = await ws.recv()
                except TimeoutError:
                    await self._close(ws, c, 1011, "NET-0001: no audio received within the "
                                      "timeout window")
                    return
                if isinstance(data, bytes):
                    c.audio += data
                    c.audio_messages += 1
                    if drop is not None:
                        await self._close(ws, c, *drop)
                        return
                    await self._advance(ws, c, state, interim)
                    await self._notify()
                    continue
                try:
                    msg = json.loads(data)
                    if not isinstance(msg, dict):
                        raise InvalidMessage("a JSON object is required")
                    validate_client_message(msg)
                except (ValueError, InvalidMessage) as exc:
                    self.invalid_received.append((data, str(exc)))
                    await self._send(ws, c, {"type": "Error", "variant": "SchemaError",
                                             "description": f"could not parse the message: "
                                                            f"{exc}", "message": data})
                    await self._notify()
                    continue
                c.messages.append(msg)
                await self._notify()
                if msg["type"] == "Finalize":
                    await self._flush(ws, c, state, from_finalize=True)
                elif msg["type"] == "CloseStream":
                    c.close_stream = True
                    await self._flush(ws, c, state, from_finalize=False)
                    await self._send(ws, c, {
                        "type": "Metadata", "transaction_key": "deprecated",
                        "request_id": c.request_id,
                        "sha256": hashlib.sha256(bytes(c.audio)).hexdigest(),
                        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "duration": round(c.audio_s, 3), "channels": 1})
                    await self._close(ws, c, 1000, "")
                    return
        except ConnectionClosed as exc:
            if c.closed is None:
                rcvd = exc.rcvd
                c.closed = (rcvd.code, rcvd.reason) if rcvd else (1006, "")
        finally:
            await self._notify()

    async def _close(self, ws: ServerConnection, c: ListenConnection, code: int,
                     reason: str) -> None:
        c.closed = (code, reason)
        with contextlib.suppress(ConnectionClosed):
            await ws.close(code, reason)

    def _results(self, c: ListenConnection, text: str, confidence: float, start: float,
                 end: float, *, is_final: bool, speech_final: bool = False,
                 from_finalize: bool = False) -> dict[str, Any]:
        words = text.split()
        span = max(end - start, 0.0)
        step = span / len(words) if words else 0.0
        model = c.query.get("model", "nova-3")
        msg: dict[str, Any] = {
            "type": "Results", "channel_index": [0, 1],
            "duration": round(span, 3), "start": round(start, 3),
            "is_final": is_final, "speech_final": speech_final,
            "channel": {"alternatives": [{
                "transcript": text, "confidence": confidence,
                "words": [{"word": re.sub(r"[^\w']", "", w).lower() or w,
                           "start": round(start + i * step, 3),
                           "end": round(start + (i + 1) * step, 3),
                           "confidence": confidence, "punctuated_word": w}
                          for i, w in enumerate(words)]}]},
            "metadata": {"request_id": c.request_id,
                         "model_info": {"name": f"general-{model}", "version": "2025-01-01.0",
                                        "arch": model},
                         "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, model))}}
        if from_finalize:
            msg["from_finalize"] = True
        return msg

    async def _advance(self, ws: ServerConnection, c: ListenConnection, state: _State,
                       interim: bool) -> None:
        now = c.audio_s
        segs = state.utt.segments
        every = state.utt.final_every_ms
        while every and state.index < len(segs) - 1 and now * 1000 >= (state.index + 1) * every:
            text, conf = segs[state.index]
            await self._send(ws, c, self._results(c, text, conf, state.start, now,
                                                  is_final=True, speech_final=True))
            state.index += 1
            state.start = now
            state.revealed = 0
        if (interim and state.index < len(segs)
                and (now - state.last_interim) * 1000 >= self.interim_every_ms):
            state.last_interim = now
            words = segs[state.index][0].split()
            state.revealed = min(state.revealed + 1, len(words))
            if state.revealed:
                await self._send(ws, c, self._results(
                    c, " ".join(words[:state.revealed]), segs[state.index][1] * 0.9,
                    state.start, now, is_final=False))

    async def _flush(self, ws: ServerConnection, c: ListenConnection, state: _State, *,
                     from_finalize: bool) -> None:
        segs = state.utt.segments[state.index:]
        now = c.audio_s
        share = (now - state.start) / len(segs) if segs else 0.0
        for i, (text, conf) in enumerate(segs):
            start = state.start + i * share
            await self._send(ws, c, self._results(
                c, text, conf, start, start + share, is_final=True,
                speech_final=(i == len(segs) - 1 and not from_finalize),
                from_finalize=from_finalize))
        state.index += len(segs)
        state.start = now


@dataclass
class _State:
    utt: Utterance
    index: int = 0
    start: float = 0.0
    last_interim: float = 0.0
    revealed: int = 0


__all__ = [
    "CLIENT_TYPES",
    "PATH",
    "SERVER_TYPES",
    "FakeDeepgramListen",
    "InvalidMessage",
    "ListenConnection",
    "Utterance",
    "check_query",
    "validate_client_message",
    "validate_server_message",
]
