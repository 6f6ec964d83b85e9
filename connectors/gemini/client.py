"""Gemini Live API connector: a Voice AI media unit on the official ``google-genai`` SDK.

The session is opened with ``genai.Client(...).aio.live.connect(model=..., config=...)``
(the SDK sends ``setup`` and waits for ``setupComplete``); see
:mod:`connectors.gemini.connect`.

Media: frames routed into the client (PCM16 16 kHz) are queued (bounded, never
blocking the 20 ms media clock) and one sender task sends them as
``realtimeInput.audio`` blobs (``audio/pcm;rate=16000``). Model audio
(``serverContent.modelTurn.parts[].inlineData``, PCM16 24 kHz) is emitted to the
client's sinks. Barge-in (on by default): on ``serverContent.interrupted`` the
sinks' playout buffers are cleared before the ``Interrupted`` event is dispatched.
Gemini has no truncation message: the server already knows where it stopped.

Tool calls: every ``toolCall.functionCalls[]`` entry is dispatched as
``VoiceAIEvents.ToolCall`` (``name``, ``call_id`` = the call's ``id``, ``arguments``
= its ``args``); :meth:`LiveAPIClient.send_tool_result` answers with
``toolResponse.functionResponses[{id, name, response}]``.

Per-turn latency (``VoiceAIEvents.TurnLatency``, also in the session CDR): with the
default automatic activity detection the Live API sends no dependable end-of-speech
event: ``inputTranscription`` (even ``finished``) is documented as unordered with
respect to the model turn, ``generationComplete`` / ``turnComplete`` are about the
model, and ``usageMetadata`` holds token counts only. So a turn is timed only when
the user's speech end is known: the server's ``voiceActivity`` ``ACTIVITY_END`` (or
``voiceActivityDetectionSignal`` ``VAD_SIGNAL_TYPE_EOS``) when it sends one, or the
``realtimeInput.activityEnd`` this client wrote (automatic activity detection
switched off, :meth:`LiveAPIClient.send_activity_end`); ``ACTIVITY_START`` /
``activityStart`` before any answer means the user went on speaking. Otherwise
nothing is reported. ``speech_end_to_audio_ms`` runs from that moment (arrival,
or our write) to the first model audio of a model turn begun after it (the tail of
a turn already playing does not count), on the gateway's clock
(``time.perf_counter``). One record per user turn, sent at that first audio; a
barge-in afterwards does not cancel it. Gemini exposes no STT / LLM / TTS split:
those figures are None.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from connectors.base import ABNORMAL_CLOSURE, AUDIO, EVENT, QueuedVoiceAIClient, frame_excerpt
from connectors.gemini.events import LiveAPIEvents, message_events
from connectors.gemini.formats import GEMINI_LIVE_CAPABILITIES, mime_type, parse_mime_type
from gateway.media.format import AudioFormat, AudioFrame
from gateway.runtime.events import ErrorSink, Event

log = logging.getLogger(__name__)

#: Unparsable messages in a row after which the reader gives up on the connection.
_MAX_BAD_MESSAGES = 50

#: Close codes that report no error (normal, going away, none given, dropped).
_NOT_ERRORS = frozenset({1000, 1001, 1005, ABNORMAL_CLOSURE})


def _raw_frame(exc: BaseException) -> bytes | str | None:
    """The frame the SDK failed to read, or None.

    The SDK reads each frame into ``raw_response`` in ``AsyncSession._receive`` and
    raises from there (its ValueError quotes the frame, but its errors for a non-object
    or an unknown object do not); the frame is taken from that traceback frame.
    """
    found: bytes | str | None = None
    tb = exc.__traceback__
    while tb is not None:
        raw = tb.tb_frame.f_locals.get("raw_response")
        if isinstance(raw, bytes | bytearray | str):
            found = bytes(raw) if isinstance(raw, bytearray) else raw
        tb = tb.tb_next
    return found


E = LiveAPIEvents


def _dump(message: Any) -> dict[str, Any]:
    """The wire JSON (camelCase, bytes as standard base64) of an SDK ``LiveServerMessage``.

    The SDK serialises bytes as URL-safe base64; model audio is re-encoded with the
    standard alphabet the Live API itself uses, so ``event.data`` matches the wire.
    """
    dump = getattr(message, "model_dump", None)
    if dump is None:
        return dict(message) if isinstance(message, dict) else {}
    data: dict[str, Any] = dump(mode="json", exclude_none=True, by_alias=True)
    content = getattr(message, "server_content", None)
    turn = getattr(content, "model_turn", None) if content is not None else None
    if turn is not None and turn.parts:
        parts = data["serverContent"]["modelTurn"].get("parts") or []
        for part, wire in zip(turn.parts, parts, strict=False):
            blob = part.inline_data
            if blob is not None and isinstance(blob.data, bytes) and "inlineData" in wire:
                wire["inlineData"]["data"] = base64.b64encode(blob.data).decode("ascii")
    return data


def _closed_by(exc: BaseException) -> tuple[int, str] | None:
    """(code, reason) when ``exc`` reports the WebSocket closing, else None.

    The SDK turns ``websockets.ConnectionClosed`` into ``errors.APIError(code,
    reason)`` raised inside the ``except`` clause, so the original is the context.
    """
    from websockets.exceptions import ConnectionClosed

    cause = exc if isinstance(exc, ConnectionClosed) else exc.__context__
    if not isinstance(cause, ConnectionClosed):
        return None
    if cause.rcvd is not None:
        return cause.rcvd.code, cause.rcvd.reason
    if cause.sent is not None:
        return cause.sent.code, cause.sent.reason
    return ABNORMAL_CLOSURE, ""


def _voice_activity(data: dict[str, Any]) -> str | None:
    """"start" / "end" when a server message (wire JSON) reports the user's voice
    activity starting / ending (``voiceActivity`` or ``voiceActivityDetectionSignal``)."""
    va = data.get("voiceActivity")
    if isinstance(va, dict):
        kind = va.get("voiceActivityType") or va.get("type")
        if kind == "ACTIVITY_END":
            return "end"
        if kind == "ACTIVITY_START":
            return "start"
    sig = data.get("voiceActivityDetectionSignal")
    if isinstance(sig, dict):
        kind = sig.get("vadSignalType")
        if kind == "VAD_SIGNAL_TYPE_EOS":
            return "end"
        if kind == "VAD_SIGNAL_TYPE_SOS":
            return "start"
    return None


def tool_response_body(result: Any) -> dict[str, Any]:
    """``functionResponses[].response`` for a scenario's tool result.

    A dict is sent as is (use ``{"output": ...}`` / ``{"error": ...}`` as Gemini
    documents); anything else is wrapped as ``{"output": result}``.
    """
    if isinstance(result, dict):
        return result
    return {"output": result}


class LiveAPIClient(QueuedVoiceAIClient):
    """A connected Gemini Live session, as a media unit and event target.

    Create it with :func:`~connectors.gemini.connect.create_live_api_client`
    (``Gemini.create_live_api_client``). Audio routed into it goes to Gemini; the
    model's audio comes out of it. Every server message is dispatched as one or more
    :class:`~connectors.gemini.events.LiveAPIEvents` constants with ``event.data``
    (the message's wire JSON, a dict) and ``event.client``.

    Request methods (``send_tool_result``, ``send_client_content`` ...) never block:
    they queue the message behind any queued audio, keeping order, and return an
    ``asyncio.Future[bool]`` that resolves True once it is written to the socket
    (False if the client closed first or the SDK refused it). Awaiting it is optional.

    Errors: a message the SDK cannot read (malformed JSON, not an object, no known
    field) or an error body dispatches ``LiveAPIEvents.Error`` and then
    ``VoiceAIEvents.Error`` with a precise ``message``; reading goes on. A close with
    an error code (the Live API's way of reporting errors, e.g. 1007 or 1011)
    dispatches ``VoiceAIEvents.Error`` before ``WebSocketClosed``.

    Args:
        session: an entered ``google.genai.live.AsyncSession``.
        manager: the ``connect()`` context manager that made it (exited on close).
        model: the model name (for logs and ``repr``).
        barge_in: clear the sinks' playout when the server reports ``interrupted``.
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        max_queued_audio_ms: audio waiting to be sent beyond this is dropped,
            oldest first (the vendor link is slower than real time).
        min_chunk_ms: audio is sent in blobs of at least this many ms.
        owner: the owning session (default: the one running now).
    """

    capabilities = GEMINI_LIVE_CAPABILITIES
    vendor = "gemini"
    _keep_first_close = True

    def __init__(
        self,
        session: Any,
        *,
        manager: Any = None,
        model: str = "",
        barge_in: bool = True,
        on_websocket_closed: Callable[[Event], Any] | None = None,
        max_queued_audio_ms: float = 2000.0,
        min_chunk_ms: int = 20,
        owner: ErrorSink | None = None,
    ) -> None:
        super().__init__(owner, on_websocket_closed=on_websocket_closed,
                         max_queued_audio_ms=max_queued_audio_ms, min_chunk_ms=min_chunk_ms)
        self._session = session
        self._manager = manager
        self.model = model
        self.barge_in = barge_in
        self._out_converters: dict[AudioFormat, Any] = {}
        self._manager_exited = False
        self._client_closed = False
        #: Function name per outstanding tool call id (toolResponse needs both).
        self._tool_names: dict[str, str] = {}
        #: ``session_id`` from ``setupComplete`` (None if the server sent none).
        self.session_id: str | None = getattr(session, "session_id", None)
        #: perf_counter() of the unanswered user turn's speech end.
        self._speech_end: float | None = None
        #: A model turn is producing audio (until generationComplete / turnComplete /
        #: interrupted).
        self._model_speaking = False
        #: The model turn playing at the speech end: its audio does not answer the turn.
        self._skip_model_turn = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Gemini LiveAPIClient model={self.model!r} {state} "
            f"in={self.input_format} out={self.output_format}>"
        )

    @property
    def pending_tool_calls(self) -> dict[str, str]:
        """Tool calls not answered yet: call id -> function name."""
        return dict(self._tool_names)

    # -- lifecycle --------------------------------------------------------------------
    def _start(self) -> None:
        """Start the reader and sender tasks; ``SetupComplete`` is dispatched first."""
        self._start_tasks(self._read_loop())

    async def close(self) -> None:
        """Close the WebSocket (code 1000) and drop every media route; idempotent.

        ``WebSocketClosed`` is dispatched (once) before this returns. The calls
        this client was connected to are left alone.
        """
        self._client_closed = True
        await super().close()

    async def _close_transport(self, already: bool) -> None:
        await self._exit_manager()

    async def _exit_manager(self) -> None:
        if self._manager_exited:
            return
        self._manager_exited = True
        try:
            if self._manager is not None:
                await asyncio.wait_for(self._manager.__aexit__(None, None, None), 5.0)
            else:
                await asyncio.wait_for(self._session.close(), 5.0)
        except Exception as exc:  # already gone: nothing left to close
            log.debug("gemini: websocket close failed: %r", exc)

    # -- tasks ------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        code, reason = ABNORMAL_CLOSURE, ""
        bad = 0
        try:
            setup = getattr(self._session, "setup_complete", None)
            self._handle_data({"setupComplete": _dump(setup) if setup is not None else {}})
            while True:
                try:
                    async for message in self._session.receive():
                        bad = 0
                        self._handle(message)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    closed = _closed_by(exc)
                    if closed is not None:
                        code, reason = closed
                        break
                    bad += 1
                    self._on_bad_message(exc)
                    if bad >= _MAX_BAD_MESSAGES:
                        code, reason = ABNORMAL_CLOSURE, f"{type(exc).__name__}"
                        break
        except asyncio.CancelledError:
            self._connection_lost(1000, "closed by client")
            raise
        except Exception as exc:
            log.exception("gemini: reader failed")
            reason = f"{type(exc).__name__}"
        if self._client_closed:
            code, reason = 1000, "closed by client"
        elif code not in _NOT_ERRORS and not self._closed_dispatched:
            # The Live API reports errors by closing (1007 bad argument, 1008, 1011 ...).
            self._dispatch_error(
                f"gemini closed the session: code {code}" + (f": {reason}" if reason else ""),
                {"code": code, "reason": reason})
        self._connection_lost(code, reason)
        await self._exit_manager()

    def _on_bad_message(self, exc: BaseException) -> None:
        """A message the SDK could not read, or an error body: ``LiveAPIEvents.Error``
        (payload ``message``, ``data.error``) and ``VoiceAIEvents.Error``; reading goes on."""
        raw = _raw_frame(exc)
        code = getattr(exc, "code", None)
        generic: dict[str, Any] = {}
        if isinstance(code, int):  # an error body the SDK recognised (APIError)
            status = getattr(exc, "status", None)
            message = (f"gemini reported an error {code}{f' {status}' if status else ''}: "
                       f"{getattr(exc, 'message', None) or exc}")
            details = getattr(exc, "details", None)
            generic = dict(details) if isinstance(details, dict) else {}
        elif raw is None:
            message = f"unreadable message from gemini ({type(exc).__name__}: {exc})"
        else:
            excerpt = frame_excerpt(raw)
            generic = {"raw": excerpt}
            try:
                parsed = json.loads(raw)
            except ValueError as err:
                message = f"malformed JSON from gemini: {err}: {excerpt}"
            else:
                err_body = parsed.get("error") if isinstance(parsed, dict) else None
                if not isinstance(parsed, dict):
                    message = f"malformed JSON from gemini: not a JSON object: {excerpt}"
                elif isinstance(err_body, dict):  # {"error": {code, status, message}}
                    generic = parsed
                    code = err_body.get("code")
                    status = err_body.get("status")
                    what = " ".join(str(v) for v in (code, status) if v)
                    message = (f"gemini reported an error{f' {what}' if what else ''}: "
                               f"{err_body.get('message') or excerpt}")
                else:
                    message = (f"malformed message from gemini: no field the Live API "
                               f"defines: {excerpt}")
        data: dict[str, Any] = {"error": {"message": message}}
        details = getattr(exc, "details", None)
        if isinstance(details, dict):
            data["error"]["details"] = details
        if isinstance(code, int):
            data["error"]["code"] = code
        self.dispatch(E.Error, data=data, client=self, message=message)
        self._dispatch_error(message, generic)

    async def _write_audio(self, data: bytes) -> None:
        await self._send_audio(data)

    async def _write_event(self, kind: str, payload: Any) -> None:
        _what, send = payload
        await send()

    def _describe(self, kind: str, payload: Any) -> Any:
        return "audio" if kind == AUDIO else payload[0]

    async def _send_audio(self, data: bytes) -> None:
        from google.genai import types

        fmt = self.input_format
        assert fmt is not None
        await self._session.send_realtime_input(
            audio=types.Blob(data=data, mime_type=mime_type(fmt))
        )

    # -- server messages -----------------------------------------------------------------
    def _handle(self, message: Any) -> None:
        """One SDK ``LiveServerMessage``: emit its audio, dispatch its events."""
        content = getattr(message, "server_content", None)
        model_turn = getattr(content, "model_turn", None) if content is not None else None
        if model_turn is not None and not self._closed:
            for part in model_turn.parts or ():
                blob = getattr(part, "inline_data", None)
                if blob is not None and blob.data:
                    self._model_audio()
                    self._on_audio(blob.data, blob.mime_type)
        self._handle_data(_dump(message))

    def _handle_data(self, data: dict[str, Any]) -> None:
        """Dispatch the events of one server message given as wire JSON."""
        content = data.get("serverContent") if isinstance(data.get("serverContent"), dict) else {}
        if any(content.get(k) for k in ("generationComplete", "turnComplete", "interrupted")):
            self._model_speaking = self._skip_model_turn = False
        activity = _voice_activity(data)
        if activity == "end":
            self._user_speech_ended()
        elif activity == "start":
            self._speech_end = None
        for name in message_events(data):
            if name == E.ToolCall:
                self._on_tool_call(data)
            elif name == E.Interrupted:
                if self.barge_in:
                    self.clear_media_buffer()
                self.dispatch(name, data=data, client=self)
            elif name in (E.InputTranscription, E.OutputTranscription):
                key = ("inputTranscription" if name == E.InputTranscription
                       else "outputTranscription")
                tr = content.get(key) or {}
                self.dispatch(name, data=data, client=self, text=tr.get("text") or "",
                              finished=bool(tr.get("finished")))
            elif name == E.ToolCallCancellation:
                ids = [str(i) for i in (data["toolCallCancellation"].get("ids") or [])]
                for call_id in ids:
                    self._tool_names.pop(call_id, None)
                self.dispatch(name, data=data, client=self, ids=ids)
            elif name == E.GoAway:
                left = (data.get("goAway") or {}).get("timeLeft")
                log.info("gemini: server sent goAway (time left %s)", left)
                self.dispatch(name, data=data, client=self, time_left=left)
            elif name == E.SetupComplete:
                sid = (data.get("setupComplete") or {}).get("sessionId")
                if sid:
                    self.session_id = sid
                self.dispatch(name, data=data, client=self)
            else:
                self.dispatch(name, data=data, client=self)

    # -- per-turn latency ----------------------------------------------------------------
    def _user_speech_ended(self) -> None:
        """The user's speech ended (server voice activity or our ``activityEnd``)."""
        if self._speech_end is None:
            self._speech_end = time.perf_counter()
            self._skip_model_turn = self._model_speaking

    def _model_audio(self) -> None:
        """Model audio arrived: report the user turn it answers, if any."""
        if self._speech_end is not None and not self._skip_model_turn:
            elapsed = (time.perf_counter() - self._speech_end) * 1000.0
            self._speech_end = None
            self._report_turn_latency(speech_end_to_audio_ms=elapsed)
        self._model_speaking = True

    def _on_tool_call(self, data: dict[str, Any]) -> None:
        calls = (data.get("toolCall") or {}).get("functionCalls") or []
        for call in calls:
            if not isinstance(call, dict):
                continue
            call_id = str(call.get("id") or "")
            name = str(call.get("name") or "")
            if call_id:
                self._tool_names[call_id] = name
            self._dispatch_tool_call(name, call_id, call.get("args") or {}, data)

    def _on_audio(self, audio: bytes, mime: str | None) -> None:
        out_fmt = self.output_format
        if out_fmt is None:
            return
        src = parse_mime_type(mime, default_rate=out_fmt.sample_rate)
        if src is None:
            log.debug("gemini: ignored inline data of type %r", mime)
            return
        if src != out_fmt:
            conv = self._out_converters.get(src)
            if conv is None:
                from gateway.media.convert import FormatConverter

                conv = self._out_converters[src] = FormatConverter(src, out_fmt)
            audio = conv.convert(audio)
        if audio:
            self._emit(AudioFrame(audio, out_fmt))

    # -- media in ---------------------------------------------------------------------------
    # -- client messages ---------------------------------------------------------------------
    def _queue_send(self, what: str,
                    send: Callable[[], Awaitable[None]]) -> asyncio.Future[bool]:
        return self._queue(EVENT, (what, send), what)

    def send_tool_result(
        self, call_id: str, result: Any, *, name: str | None = None
    ) -> asyncio.Future[bool]:
        """Answer a ``VoiceAIEvents.ToolCall``: ``toolResponse.functionResponses``
        ``[{id: call_id, name, response}]``.

        Args:
            call_id: ``call_id`` of the ``ToolCall`` event (Gemini's function call ``id``).
            result: a dict is sent as the ``response`` object; anything else as
                ``{"output": result}``.
            name: the function name; default: the name the call came with.
        """
        from google.genai import types

        call_id = str(call_id)
        fname = name if name is not None else self._tool_names.get(call_id)
        self._tool_names.pop(call_id, None)
        if fname is None:
            log.warning("gemini: tool result for unknown call id %r", call_id)
        response = types.FunctionResponse(id=call_id, name=fname,
                                          response=tool_response_body(result))
        return self._queue_send(
            "toolResponse",
            lambda: self._session.send_tool_response(function_responses=[response]),
        )

    def send_client_content(
        self, turns: Any = None, turn_complete: bool = True
    ) -> asyncio.Future[bool]:
        """Send ``clientContent`` (ordered conversation turns; ``Content`` objects or dicts).

        A str is sent as one user text turn.
        """
        if isinstance(turns, str):
            turns = {"role": "user", "parts": [{"text": turns}]}
        return self._queue_send(
            "clientContent",
            lambda: self._session.send_client_content(turns=turns, turn_complete=turn_complete),
        )

    def send_text(self, text: str) -> asyncio.Future[bool]:
        """Send ``realtimeInput.text`` (text the model reacts to like speech)."""
        return self._queue_send("realtimeInput.text",
                           lambda: self._session.send_realtime_input(text=text))

    def send_audio_stream_end(self) -> asyncio.Future[bool]:
        """Flush caller audio and send ``realtimeInput.audioStreamEnd`` (mic paused)."""
        return self._queue_send("realtimeInput.audioStreamEnd",
                           lambda: self._session.send_realtime_input(audio_stream_end=True))

    def send_activity_start(self) -> asyncio.Future[bool]:
        """Send ``realtimeInput.activityStart`` (automatic VAD switched off)."""
        async def send() -> None:
            await self._session.send_realtime_input(activity_start={})
            self._speech_end = None

        return self._queue_send("realtimeInput.activityStart", send)

    def send_activity_end(self) -> asyncio.Future[bool]:
        """Send ``realtimeInput.activityEnd`` (automatic VAD switched off); the moment
        it is written is the user's speech end for ``TurnLatency``."""
        async def send() -> None:
            await self._session.send_realtime_input(activity_end={})
            self._user_speech_ended()

        return self._queue_send("realtimeInput.activityEnd", send)

    def clear_input_audio(self) -> None:
        """Drop caller audio queued and not yet sent."""
        self._clear_queued_audio()
