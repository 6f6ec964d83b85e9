"""A local stand-in for Ultravox's REST create-call and ``serverWebSocket`` join.

One tiny ASGI app on uvicorn (one port) serves both:

* ``POST /api/calls`` and ``POST /api/agents/{agent_id}/calls`` with ``X-API-Key``:
  answers ``201`` with a call object holding ``callId`` and
  ``joinUrl = ws://127.0.0.1:P/calls/{callId}/server_web_socket``; a missing or
  wrong key gets ``401 {"detail": "Invalid API key."}``; a body that breaks the
  field lists below gets ``400`` (and is recorded in ``invalid_received``).
* the WebSocket at the ``joinUrl``: binary frames are raw PCM16 little-endian
  audio at the call's rates; text frames are JSON data messages.

There is no Ultravox SDK to type-check against, so shapes are checked against these
field lists (from https://docs.ultravox.ai/apps/datamessages and the create-call
reference, https://docs.ultravox.ai/api-reference/calls/calls-post). Unknown keys,
missing required keys and wrong types are invalid.

Client -> server data messages (``CLIENT_MESSAGES``)::

    input_text_message    text; deferResponse?, urgency?
    set_output_medium     medium ("voice" | "text")
    client_tool_result    invocationId; result?, responseType?, agentReaction?,
                          errorType?, errorMessage?
    hang_up               message?
    ping                  timestamp
    forced_agent_message  content; toolCalls?, uninterruptible?, urgency?

Server -> client data messages (``SERVER_MESSAGES``)::

    call_started            callId
    state                   state
    transcript              role, medium, final, ordinal; text?, delta?
    client_tool_invocation  toolName, invocationId, parameters
    playback_clear_buffer   (nothing)
    debug                   message
    pong                    timestamp

In strict mode (the default) an invalid client message is recorded in
``invalid_received`` (the fixture fails the test); an invalid server message the
test tries to send raises :class:`InvalidMessage`.

Modes: ``"script"`` (default; the test drives it with :meth:`play_audio`,
:meth:`user_turn`, :meth:`state`, :meth:`playback_clear_buffer`,
:meth:`client_tool_invocation`, :meth:`close_connection` ...) and ``"echo"`` (every
binary frame goes straight back, resampled to the output rate when the rates differ).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import warnings
from collections.abc import Callable
from typing import Any

from tests.fakes.asgi import LoopbackASGIServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class InvalidMessage(AssertionError):
    """A message breaks the Ultravox field lists of this module."""


#: type -> (required fields, optional fields); ``type`` itself is implied.
CLIENT_MESSAGES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "input_text_message": (frozenset({"text"}), frozenset({"deferResponse", "urgency"})),
    "set_output_medium": (frozenset({"medium"}), frozenset()),
    "client_tool_result": (frozenset({"invocationId"}), frozenset(
        {"result", "responseType", "agentReaction", "errorType", "errorMessage"})),
    "hang_up": (frozenset(), frozenset({"message"})),
    "ping": (frozenset({"timestamp"}), frozenset()),
    "forced_agent_message": (frozenset({"content"}),
                             frozenset({"toolCalls", "uninterruptible", "urgency"})),
}

SERVER_MESSAGES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "call_started": (frozenset({"callId"}), frozenset()),
    "state": (frozenset({"state"}), frozenset()),
    "transcript": (frozenset({"role", "medium", "final", "ordinal"}),
                   frozenset({"text", "delta"})),
    "client_tool_invocation": (frozenset({"toolName", "invocationId", "parameters"}),
                               frozenset()),
    "playback_clear_buffer": (frozenset(), frozenset()),
    "debug": (frozenset({"message"}), frozenset()),
    "pong": (frozenset({"timestamp"}), frozenset()),
}

#: Field types checked on top of the lists.
_TYPES: dict[str, type | tuple[type, ...]] = {
    "text": str, "deferResponse": bool, "medium": str, "invocationId": str, "result": str,
    "responseType": str, "agentReaction": str, "errorType": str, "errorMessage": str,
    "message": str, "timestamp": (int, float), "content": str, "uninterruptible": bool,
    "callId": str, "state": str, "role": str, "final": bool, "ordinal": int,
    "delta": str, "toolName": str, "parameters": dict,
}
_ENUMS: dict[tuple[str, str], frozenset[str]] = {
    ("set_output_medium", "medium"): frozenset({"voice", "text"}),
    ("client_tool_result", "agentReaction"): frozenset({"speaks", "listens", "speaks-once"}),
    ("client_tool_result", "errorType"): frozenset({"undefined", "implementation-error"}),
    ("transcript", "role"): frozenset({"user", "agent"}),
    ("transcript", "medium"): frozenset({"voice", "text"}),
}

#: Create-call body fields (``POST /api/calls``).
CALL_FIELDS = frozenset({
    "systemPrompt", "temperature", "model", "voice", "externalVoice", "languageHint",
    "initialMessages", "joinTimeout", "maxDuration", "timeExceededMessage",
    "inactivityMessages", "selectedTools", "medium", "recordingEnabled", "firstSpeaker",
    "transcriptOptional", "initialOutputMedium", "vadSettings", "firstSpeakerSettings",
    "experimentalSettings", "metadata", "initialState", "dataConnection", "callbacks",
})
#: Agent-call body fields (``POST /api/agents/{agent_id}/calls``).
AGENT_CALL_FIELDS = frozenset({
    "templateContext", "initialMessages", "metadata", "medium", "joinTimeout",
    "maxDuration", "recordingEnabled", "initialOutputMedium", "firstSpeakerSettings",
    "experimentalSettings", "initialState", "dataConnection", "callbacks",
})
#: ``medium.serverWebSocket`` fields; ``inputSampleRate`` is required.
SERVER_WEBSOCKET_FIELDS = frozenset({"inputSampleRate", "outputSampleRate",
                                     "clientBufferSizeMs"})


def check_message(msg: Any, table: dict[str, tuple[frozenset[str], frozenset[str]]]) -> None:
    """Check one data message against ``table``.

    Raises:
        InvalidMessage: unknown type, unknown or missing keys, wrong types.
    """
    if not isinstance(msg, dict):
        raise InvalidMessage(f"data message is not a JSON object: {msg!r}")
    kind = msg.get("type")
    if kind not in table:
        raise InvalidMessage(f"unknown data message type {kind!r}")
    required, optional = table[kind]
    keys = set(msg) - {"type"}
    unknown = keys - required - optional
    if unknown:
        raise InvalidMessage(f"{kind} has unknown keys {sorted(unknown)}")
    missing = required - keys
    if missing:
        raise InvalidMessage(f"{kind} lacks {sorted(missing)}")
    for key in keys:
        want = _TYPES.get(key)
        value = msg[key]
        if want is not None and (not isinstance(value, want) or
                                 (isinstance(value, bool) and want in ((int, float), int))):
            raise InvalidMessage(f"{kind}.{key} has the wrong type: {value!r}")
        allowed = _ENUMS.get((kind, key))
        if allowed is not None and value not in allowed:
            raise InvalidMessage(f"{kind}.{key} must be one of {sorted(allowed)}: {value!r}")


def check_call_body(body: Any, *, agent: bool) -> None:
    """Check a create-call body.

    Raises:
        InvalidMessage: not an object, unknown fields, bad ``medium``.
    """
    if not isinstance(body, dict):
        raise InvalidMessage("the create-call body is not a JSON object")
    allowed = AGENT_CALL_FIELDS if agent else CALL_FIELDS
    unknown = set(body) - allowed
    if unknown:
        raise InvalidMessage(f"create-call body has unknown fields {sorted(unknown)}")
    medium = body.get("medium")
    if not isinstance(medium, dict) or set(medium) != {"serverWebSocket"}:
        raise InvalidMessage(f"medium must be {{'serverWebSocket': ...}}: {medium!r}")
    sws = medium["serverWebSocket"]
    if not isinstance(sws, dict) or set(sws) - SERVER_WEBSOCKET_FIELDS:
        raise InvalidMessage(f"bad medium.serverWebSocket: {sws!r}")
    if "inputSampleRate" not in sws:
        raise InvalidMessage("medium.serverWebSocket lacks inputSampleRate")
    for key, value in sws.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidMessage(f"medium.serverWebSocket.{key} must be a positive int")
    if "selectedTools" in body and not isinstance(body["selectedTools"], list):
        raise InvalidMessage("selectedTools must be a list")
    for key in ("systemPrompt", "model", "voice"):
        if key in body and not isinstance(body[key], str):
            raise InvalidMessage(f"{key} must be a string")


class FakeUltravoxServer(LoopbackASGIServer):
    """A protocol-faithful local Ultravox (see the module docstring).

    Args:
        mode: ``"script"`` or ``"echo"``.
        api_key: the ``X-API-Key`` to accept; None accepts any non-empty key.
        strict: check every message against the field lists.
        reject_calls: answer this many upcoming create-call requests with
            ``reject_status`` (fault injection for retries).
        reject_status: the status used by ``reject_calls``.
        refuse_join: refuse the WebSocket join (HTTP 403).

    Attributes:
        base_url: ``"http://127.0.0.1:P/api"``.
        calls: one dict per create-call request (``path``, ``api_key``, ``body``,
            ``status``, ``response``).
        received_messages: every client data message, in order.
        received_audio: every binary byte received, in order; ``audio_chunks`` per frame.
        sent_messages: every server data message sent.
        invalid_received / invalid_sent: ``(message, reason)`` per failed check.
        closed_by_client: ``(code, reason)`` per client-closed WebSocket.
    """

    ws = "websockets-sansio"

    def __init__(
        self,
        *,
        mode: str = "script",
        api_key: str | None = None,
        strict: bool = True,
        reject_calls: int = 0,
        reject_status: int = 503,
        refuse_join: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("script", "echo"):
            raise ValueError("mode must be 'script' or 'echo'")
        self.mode = mode
        self.api_key = api_key
        self.strict = strict
        self.reject_calls = reject_calls
        self.reject_status = reject_status
        self.refuse_join = refuse_join
        self._ids = itertools.count(1)
        self._send: Send | None = None
        self._send_lock = asyncio.Lock()
        self._echo_state: Any = None
        self.calls: list[dict[str, Any]] = []
        self.call_media: dict[str, dict[str, int]] = {}
        self.current_call: str | None = None
        self.joins = 0
        self.received_messages: list[dict[str, Any]] = []
        self.received_audio = bytearray()
        self.audio_chunks: list[bytes] = []
        self.sent_messages: list[dict[str, Any]] = []
        self.sent_audio = bytearray()
        self.invalid_received: list[tuple[Any, str]] = []
        self.invalid_sent: list[tuple[Any, str]] = []
        self.closed_by_client: list[tuple[int | None, str]] = []

    # -- lifecycle ----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def connected(self) -> bool:
        return self._send is not None

    @property
    def input_sample_rate(self) -> int:
        return self._medium().get("inputSampleRate", 0)

    @property
    def output_sample_rate(self) -> int:
        medium = self._medium()
        return medium.get("outputSampleRate", medium.get("inputSampleRate", 0))

    def _medium(self) -> dict[str, int]:
        return self.call_media.get(self.current_call or "", {})

    # -- ASGI -----------------------------------------------------------------------
    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        key = headers.get("x-api-key")
        record: dict[str, Any] = {"path": path, "method": scope["method"], "api_key": key,
                                  "content_type": headers.get("content-type"),
                                  "authorization": headers.get("authorization"),
                                  "body": None, "status": 0, "response": None}
        self.calls.append(record)

        async def reply(status: int, body: dict[str, Any]) -> None:
            record["status"] = status
            record["response"] = body
            data = json.dumps(body).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})
            await self._notify()

        parts = path.strip("/").split("/")
        agent = len(parts) == 4 and parts[:2] == ["api", "agents"] and parts[3] == "calls"
        if scope["method"] != "POST" or not (parts == ["api", "calls"] or agent):
            await reply(404, {"detail": "Not found."})
            return
        if not key or (self.api_key is not None and key != self.api_key):
            await reply(401, {"detail": "Invalid API key."})
            return
        if self.reject_calls > 0:
            self.reject_calls -= 1
            await reply(self.reject_status, {"detail": "rejected by the fake"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            await reply(400, {"detail": "body is not JSON"})
            return
        record["body"] = body
        if self.strict:
            try:
                check_call_body(body, agent=agent)
            except InvalidMessage as exc:
                self.invalid_received.append((body, str(exc)))
                await reply(400, {"detail": str(exc)})
                return
        call_id = f"call-{next(self._ids):04d}"
        sws = dict(body["medium"]["serverWebSocket"])
        self.call_media[call_id] = sws
        join = f"ws://127.0.0.1:{self.port}/calls/{call_id}/server_web_socket"
        response = {
            "callId": call_id, "joinUrl": join, "created": "2025-01-01T00:00:00Z",
            "medium": body["medium"], "model": body.get("model", "fixie-ai/ultravox"),
            "voice": body.get("voice"), "systemPrompt": body.get("systemPrompt"),
        }
        if agent:
            response["agentId"] = parts[2]
        await reply(201, response)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        assert first["type"] == "websocket.connect"
        parts = scope["path"].strip("/").split("/")
        call_id = parts[1] if len(parts) == 3 and parts[0] == "calls" else ""
        if self.refuse_join or call_id not in self.call_media:
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        self.joins += 1
        self.current_call = call_id
        self._echo_state = None
        self._send = send
        await self._notify()
        try:
            await self.send({"type": "call_started", "callId": call_id})
            await self.send({"type": "state", "state": "listening"})
            while True:
                msg = await receive()
                if msg["type"] == "websocket.disconnect":
                    self.closed_by_client.append((msg.get("code"), msg.get("reason") or ""))
                    break
                if msg.get("bytes") is not None:
                    await self._on_audio(msg["bytes"])
                elif msg.get("text") is not None:
                    await self._on_text(msg["text"])
                await self._notify()
        finally:
            if self._send is send:
                self._send = None
            await self._notify()

    # -- client messages --------------------------------------------------------------
    async def _on_audio(self, data: bytes) -> None:
        self.received_audio += data
        self.audio_chunks.append(data)
        if self.mode == "echo" and data:
            out = data
            if self.output_sample_rate != self.input_sample_rate:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    out, self._echo_state = audioop.ratecv(
                        data, 2, 1, self.input_sample_rate, self.output_sample_rate,
                        self._echo_state)
            await self.send_audio(out)

    async def _on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self.invalid_received.append((text, "not JSON"))
            return
        self.received_messages.append(msg)
        if self.strict:
            try:
                check_message(msg, CLIENT_MESSAGES)
            except InvalidMessage as exc:
                self.invalid_received.append((msg, str(exc)))
                return
        if msg.get("type") == "ping":
            await self.send({"type": "pong", "timestamp": msg["timestamp"]})
        elif msg.get("type") == "hang_up":
            await self.close_connection(1000, "hang_up")

    # -- sending ------------------------------------------------------------------------
    async def send(self, msg: dict[str, Any]) -> None:
        """Send one server data message (checked first in strict mode).

        Raises:
            InvalidMessage: strict mode and ``msg`` breaks the field lists.
            ConnectionError: no client is connected.
        """
        if self.strict:
            try:
                check_message(msg, SERVER_MESSAGES)
            except InvalidMessage as exc:
                self.invalid_sent.append((msg, str(exc)))
                raise
        await self.send_raw_text(json.dumps(msg), record=msg)

    async def send_raw_text(self, text: str, *, record: dict[str, Any] | None = None) -> None:
        """Send a text frame as is (malformed JSON for bad-input tests)."""
        send = self._send
        if send is None:
            raise ConnectionError("no client connected to the fake")
        async with self._send_lock:
            if record is not None:
                self.sent_messages.append(record)
            await send({"type": "websocket.send", "text": text})

    async def send_raw(self, text: str) -> None:
        """Send a text frame as is (the name the other fakes use)."""
        await self.send_raw_text(text)

    async def send_audio(self, data: bytes) -> None:
        """Send one binary frame (PCM16 at the output rate)."""
        send = self._send
        if send is None:
            raise ConnectionError("no client connected to the fake")
        async with self._send_lock:
            self.sent_audio += data
            await send({"type": "websocket.send", "bytes": bytes(data)})

    async def play_audio(self, audio: bytes, *, chunk_ms: float = 100.0,
                         finish: bool = True) -> None:
        """Send the agent's ``audio`` (PCM16 at the output rate) in ``chunk_ms`` frames,
        framed by ``state`` speaking / listening (the latter only when ``finish``)."""
        await self.state("speaking")
        step = max(int(self.output_sample_rate * chunk_ms / 1000) * 2, 2)
        for i in range(0, len(audio), step):
            await self.send_audio(audio[i:i + step])
        if finish:
            await self.state("listening")

    async def state(self, state: str) -> None:
        """Send ``state`` ("listening", "thinking", "speaking" ...)."""
        await self.send({"type": "state", "state": state})

    async def user_turn(self, text: str, *, ordinal: int = 0, final_first: bool = True,
                        answer: bytes = b"", transcript_late: bool = False) -> None:
        """One user turn as Ultravox reports it: the user's voice ``transcript``
        (non-final, then final), ``state`` thinking, then the ``answer`` audio
        (:meth:`play_audio`) when given.

        Args:
            final_first: the final user transcript comes before ``thinking`` (else
                right after it).
            transcript_late: the user's transcripts come only after the answer's
                first audio frame (Ultravox transcribes apart from the model).
        """
        words = text.split()
        partial = " ".join(words[: max(len(words) // 2, 1)])

        async def transcripts() -> None:
            await self.transcript(partial, role="user", final=False, ordinal=ordinal)
            await self.transcript(text, role="user", final=True, ordinal=ordinal)

        if not transcript_late and final_first:
            await transcripts()
        elif not transcript_late:
            await self.transcript(partial, role="user", final=False, ordinal=ordinal)
        await self.state("thinking")
        if not transcript_late and not final_first:
            await self.transcript(text, role="user", final=True, ordinal=ordinal)
        if not answer:
            return
        if transcript_late:
            await self.state("speaking")
            step = max(int(self.output_sample_rate * 0.1) * 2, 2)
            await self.send_audio(answer[:step])
            await transcripts()
            await self.play_audio(answer[step:])
        else:
            await self.play_audio(answer)

    async def playback_clear_buffer(self) -> None:
        """Send ``playback_clear_buffer`` (the user barged in)."""
        await self.send({"type": "playback_clear_buffer"})

    async def client_tool_invocation(self, tool_name: str, parameters: dict[str, Any],
                                     invocation_id: str | None = None) -> str:
        """Send ``client_tool_invocation``; returns the ``invocationId``."""
        invocation_id = invocation_id or f"inv-{next(self._ids):04d}"
        await self.send({"type": "client_tool_invocation", "toolName": tool_name,
                         "invocationId": invocation_id, "parameters": parameters})
        return invocation_id

    async def transcript(self, text: str, *, role: str = "agent", final: bool = True,
                         ordinal: int = 0) -> None:
        """Send a ``transcript`` with the full ``text``."""
        await self.send({"type": "transcript", "role": role, "medium": "voice",
                         "text": text, "final": final, "ordinal": ordinal})

    async def close_connection(self, code: int = 1000, reason: str = "") -> None:
        """Close the client's WebSocket from the server side."""
        send = self._send
        if send is not None:
            async with self._send_lock:
                await send({"type": "websocket.close", "code": code, "reason": reason})

    # -- waiting ------------------------------------------------------------------------
    async def wait_until(self, cond: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until ``cond()`` holds (re-checked after every received frame)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(cond)

    async def wait_for(self, msg_type: str, *, count: int = 1,
                       timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the ``count``-th client data message of ``msg_type``; return it."""

        def matches() -> list[dict[str, Any]]:
            return [m for m in self.received_messages if m.get("type") == msg_type]

        await self.wait_until(lambda: len(matches()) >= count, timeout=timeout)
        return matches()[count - 1]

    async def wait_connected(self, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self._send is not None, timeout=timeout)

    async def wait_audio(self, nbytes: int, timeout: float = 5.0) -> None:
        """Wait until at least ``nbytes`` of caller audio were received."""
        await self.wait_until(lambda: len(self.received_audio) >= nbytes, timeout=timeout)
