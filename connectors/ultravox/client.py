"""Ultravox ``serverWebSocket`` connector: a Voice AI media unit on ``websockets``.

Protocol (https://docs.ultravox.ai/apps/websockets): after the REST create-call
(:mod:`connectors.ultravox.connect`) the client joins the call's ``joinUrl``.
Caller audio goes up as binary frames of raw PCM16 little-endian mono at the
call's ``inputSampleRate``; the agent's audio comes down as binary frames at
``outputSampleRate``. Data messages are JSON text frames (see
:mod:`connectors.ultravox.events`); the client sends ``input_text_message``,
``set_output_medium``, ``client_tool_result``, ``hang_up``, ``ping`` and
``forced_agent_message``.

Media: frames routed into the client are queued (bounded, never blocking the 20 ms
media clock) and written by one sender task. Barge-in: Ultravox sends
``playback_clear_buffer`` when the user interrupts; the client clears its sinks'
playout before handlers run (Ultravox itself accounts for what was played from
``clientBufferSizeMs``, so there is no truncate message).

Per-turn latency (``VoiceAIEvents.TurnLatency``, also in the session CDR): Ultravox
reports its turn-taking as ``state`` messages (``listening`` -> ``thinking`` ->
``speaking``). The user's speech end is the switch to ``thinking`` (or the user's
final voice ``transcript``, when that came earlier); the first AI audio is the first
binary audio frame after it. ``speech_end_to_audio_ms`` is measured between those
arrivals on the gateway's clock (``time.perf_counter``): Ultravox's processing from
its end-of-turn decision to its first audio, without the uplink or playout. A turn
counts as a user turn only when a user ``transcript`` of medium ``voice`` arrived
in it (before the agent went back to ``listening``): an agent-first greeting, an
inactivity message or an ``input_text_message`` is not reported. One record per
user turn, sent at the first audio frame (or at the user transcript, when that
lags behind the audio); a barge-in afterwards does not cancel it. Ultravox
exposes no STT / LLM / TTS split: those figures are None.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from connectors.base import (
    ABNORMAL_CLOSURE,
    EVENT,
    Capabilities,
    QueuedVoiceAIClient,
    frame_excerpt,
)
from connectors.ultravox.events import WebSocketAPIEvents, event_name
from gateway.media.format import AudioFormat, AudioFrame, Encoding
from gateway.runtime.events import ErrorSink, Event

log = logging.getLogger(__name__)

#: Logger handed to the websockets library (the join URL carries no API key).
_ws_log = logging.getLogger("connectors.ultravox.websocket")


def ultravox_capabilities(input_sample_rate: int = 16000,
                          output_sample_rate: int = 16000) -> Capabilities:
    """What an Ultravox ``serverWebSocket`` call supports at the given rates (PCM16 only)."""
    return Capabilities(
        input_formats=(AudioFormat(Encoding.PCM16, int(input_sample_rate)),),
        output_formats=(AudioFormat(Encoding.PCM16, int(output_sample_rate)),),
        server_vad=True,
        barge_in=True,
        truncation=False,  # Ultravox tracks playback itself (clientBufferSizeMs)
        function_calling=True,
        transcripts=True,
    )


#: The default (16 kHz both ways) capabilities.
ULTRAVOX_CAPABILITIES = ultravox_capabilities()

#: Close codes that report no error (normal, going away, none given, dropped).
_NOT_ERRORS = frozenset({1000, 1001, 1005, ABNORMAL_CLOSURE})


class _UserTurn:
    """Timing of the current Ultravox turn (see "Per-turn latency" in the module doc).

    Times are ``time.perf_counter()`` seconds. A turn runs from the agent switching
    to ``listening`` to the next such switch; it is reported at most once.
    """

    __slots__ = ("audio_at", "final_at", "heard_user", "reported", "thinking_at")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.heard_user = False  # a user voice transcript arrived in this turn
        self.final_at: float | None = None  # the first final user transcript
        self.thinking_at: float | None = None  # the first switch to "thinking"
        self.audio_at: float | None = None  # the first audio after the speech end
        self.reported = False

    def speech_end(self) -> float | None:
        ends = [t for t in (self.final_at, self.thinking_at) if t is not None]
        return min(ends) if ends else None

    def state(self, state: str, now: float) -> None:
        if state == "listening":
            self.reset()  # a new turn; one with audio but no user speech is dropped
        elif state == "thinking" and self.thinking_at is None and self.audio_at is None:
            self.thinking_at = now

    def user_transcript(self, final: bool, now: float) -> bool:
        """A user voice transcript; True when it completes a turn already answered."""
        if self.reported:
            return False
        self.heard_user = True
        if final and self.final_at is None and self.audio_at is None:
            self.final_at = now
        return self.audio_at is not None

    def audio_started(self, now: float) -> bool:
        """An audio frame arrived; True when it answers a user turn."""
        if self.audio_at is not None or self.speech_end() is None:
            return False
        self.audio_at = now
        return self.heard_user

    def report(self) -> float | None:
        """Mark the turn reported; its speech end -> first audio in ms."""
        self.reported = True
        end = self.speech_end()
        if end is None or self.audio_at is None:
            return None
        return max(self.audio_at - end, 0.0) * 1000.0


class WebSocketAPIClient(QueuedVoiceAIClient):
    """A joined Ultravox call, as a media unit and event target.

    Create it with :func:`~connectors.ultravox.connect.create_websocket_api_client`
    (``Ultravox.create_websocket_api_client``). Every data message is dispatched as
    a :class:`~connectors.ultravox.events.WebSocketAPIEvents` constant with
    ``event.data`` (the vendor JSON) and ``event.client``.

    Request methods never block: they queue the message behind queued audio and
    return an ``asyncio.Future[bool]`` resolving True once written (False if the
    client closed first).

    Errors: a data message the client cannot read (malformed JSON, not an object, a
    shape it cannot follow) dispatches ``WebSocketAPIEvents.Error`` and then
    ``VoiceAIEvents.Error`` with a precise ``message``; reading goes on. A close with
    an error code (Ultravox's way of reporting errors, e.g. 1008 or 1011) dispatches
    ``VoiceAIEvents.Error`` before ``WebSocketClosed``.

    Args:
        websocket: an open ``websockets`` client connection to the join URL.
        call: the create-call response (``callId``, ``joinUrl`` ...).
        input_sample_rate / output_sample_rate: the call's PCM16 rates.
        barge_in: clear the sinks' playout on ``playback_clear_buffer``.
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        max_queued_audio_ms: audio waiting to be sent beyond this is dropped,
            oldest first.
        min_chunk_ms: caller audio is sent in frames of at least this many ms.
        owner: the owning session (default: the one running now).
    """

    capabilities = ULTRAVOX_CAPABILITIES
    vendor = "ultravox"
    coalesce_ms = 0  # one binary frame per queued chunk

    def __init__(
        self,
        websocket: Any,
        *,
        call: dict[str, Any] | None = None,
        input_sample_rate: int = 16000,
        output_sample_rate: int = 16000,
        barge_in: bool = True,
        on_websocket_closed: Callable[[Event], Any] | None = None,
        max_queued_audio_ms: float = 2000.0,
        min_chunk_ms: int = 20,
        owner: ErrorSink | None = None,
    ) -> None:
        caps = ultravox_capabilities(input_sample_rate, output_sample_rate)
        if caps != ULTRAVOX_CAPABILITIES:
            self.capabilities = caps
        super().__init__(owner, on_websocket_closed=on_websocket_closed,
                         max_queued_audio_ms=max_queued_audio_ms, min_chunk_ms=min_chunk_ms)
        self._ws = websocket
        #: The create-call response (``callId``, ``joinUrl``, ``medium`` ...).
        self.call: dict[str, Any] = dict(call or {})
        self.call_id: str = str(self.call.get("callId") or "")
        self.barge_in = barge_in
        self._carry = b""  # odd trailing byte of a downstream frame
        #: The last ``state`` the server reported ("listening", "speaking" ...).
        self.state: str = ""
        self._turn = _UserTurn()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Ultravox WebSocketAPIClient call_id={self.call_id!r} {state} "
            f"in={self.input_format} out={self.output_format}>"
        )

    # -- lifecycle --------------------------------------------------------------
    def _start(self) -> None:
        self._start_tasks(self._read_loop())

    async def close(self) -> None:
        """Close the WebSocket (code 1000) and drop every media route; idempotent.

        ``WebSocketClosed`` is dispatched (once) before this returns. The Ultravox
        call ends when its WebSocket closes; the SIP calls are left alone.
        """
        await super().close()

    async def _close_transport(self, already: bool) -> None:
        if not already:
            try:
                await asyncio.wait_for(self._ws.close(1000, "closed by client"), 5.0)
            except Exception as exc:
                log.debug("ultravox: websocket close failed: %r", exc)

    def _close_log_detail(self) -> str:
        return f" call_id={self.call_id}"

    # -- tasks --------------------------------------------------------------------
    async def _read_loop(self) -> None:
        await self._guard_reader(self._receive)

    async def _receive(self) -> None:
        while True:
            message = await self._ws.recv()
            if isinstance(message, bytes | bytearray | memoryview):
                self._on_audio(bytes(message))
            else:
                self._on_text(message)

    async def _write_audio(self, data: bytes) -> None:
        await self._ws.send(data)

    async def _write_event(self, kind: str, payload: Any) -> None:
        await self._ws.send(json.dumps(payload, separators=(",", ":")))

    # -- server messages ------------------------------------------------------------
    def _on_audio(self, data: bytes) -> None:
        if self._closed:
            return
        if self._carry:
            data = self._carry + data
            self._carry = b""
        if len(data) % 2:
            data, self._carry = data[:-1], data[-1:]
        if data and self.output_format is not None:
            if self._turn.audio_started(time.perf_counter()):
                self._report_turn()
            self._emit(AudioFrame(data, self.output_format))

    def _on_text(self, text: str) -> None:
        self._handle_frame(text, self._handle, "data message")

    def _malformed(self, text: bytes | str, why: str, what: str = "JSON") -> None:
        """A data message the client cannot read: ``WebSocketAPIEvents.Error``, then
        ``VoiceAIEvents.Error``; reading goes on."""
        message = f"malformed {what} from ultravox: {why}: {frame_excerpt(text)}"
        self.dispatch(
            WebSocketAPIEvents.Error,
            data={"type": "error", "message": message, "raw": text[:200]},
            client=self,
            message=message,
        )
        self._dispatch_error(message, {"raw": text[:200]})

    def _connection_lost(self, code: int, reason: str) -> None:
        if code not in _NOT_ERRORS and not self._closed_dispatched:
            # Ultravox reports errors by closing the call's socket (1008, 1011 ...).
            self._dispatch_error(
                f"ultravox closed the call {self.call_id}: code {code}"
                + (f": {reason}" if reason else ""), {"code": code, "reason": reason})
        super()._connection_lost(code, reason)

    def _handle(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "playback_clear_buffer":
            if self.barge_in:
                self.clear_media_buffer()
        elif kind == "state":
            self.state = str(data.get("state") or "")
            self._turn.state(self.state, time.perf_counter())
        elif kind == "transcript":
            if (data.get("role") == "user" and data.get("medium") == "voice"
                    and self._turn.user_transcript(bool(data.get("final")),
                                                   time.perf_counter())):
                self._report_turn()
        elif kind == "call_started" and data.get("callId"):
            self.call_id = str(data["callId"])
        self.dispatch(event_name(kind if isinstance(kind, str) else None),
                      data=data, client=self)
        if kind == "client_tool_invocation":
            self._dispatch_tool_call(str(data.get("toolName") or ""),
                                     str(data.get("invocationId") or ""),
                                     data.get("parameters"), data)

    def _report_turn(self) -> None:
        self._report_turn_latency(speech_end_to_audio_ms=self._turn.report())

    # -- client messages ------------------------------------------------------------
    def send_event(self, event: dict[str, Any]) -> asyncio.Future[bool]:
        """Queue any client data message (a dict with ``type``) after queued audio.

        Returns:
            A future resolving True once sent, False if the client closed first.
        """
        return self._queue(EVENT, dict(event), event.get("type"))

    def send_text(self, text: str, *, defer_response: bool | None = None,
                  ) -> asyncio.Future[bool]:
        """Send ``input_text_message``: a user message as text.

        Args:
            text: the message.
            defer_response: True: the agent does not answer it (extra context).
        """
        msg: dict[str, Any] = {"type": "input_text_message", "text": str(text)}
        if defer_response is not None:
            msg["deferResponse"] = bool(defer_response)
        return self.send_event(msg)

    def set_output_medium(self, medium: str) -> asyncio.Future[bool]:
        """Send ``set_output_medium``: ``"voice"`` or ``"text"`` for later agent turns."""
        if medium not in ("voice", "text"):
            raise ValueError("medium must be 'voice' or 'text'")
        return self.send_event({"type": "set_output_medium", "medium": medium})

    def hang_up(self, message: str | None = None) -> asyncio.Future[bool]:
        """Send ``hang_up``: the Ultravox agent ends its call (the SIP call is untouched)."""
        msg: dict[str, Any] = {"type": "hang_up"}
        if message is not None:
            msg["message"] = str(message)
        return self.send_event(msg)

    def ping(self, timestamp: float) -> asyncio.Future[bool]:
        """Send ``ping``; the server answers with ``pong`` carrying ``timestamp``."""
        return self.send_event({"type": "ping", "timestamp": float(timestamp)})

    def forced_agent_message(self, content: str, **fields: Any) -> asyncio.Future[bool]:
        """Send ``forced_agent_message``: the agent says ``content`` (plus Ultravox
        fields such as ``uninterruptible=True``)."""
        return self.send_event({"type": "forced_agent_message", "content": str(content),
                                **fields})

    def send_tool_result(
        self,
        call_id: str,
        result: Any,
        *,
        response_type: str | None = None,
        agent_reaction: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> asyncio.Future[bool]:
        """Answer a ``client_tool_invocation`` with ``client_tool_result``.

        Args:
            call_id: the ``invocationId`` (``event.call_id`` of ``VoiceAIEvents.ToolCall``).
            result: a str is sent as is, anything else as JSON; None with an error.
            response_type: Ultravox ``responseType`` (e.g. ``"hang-up"``); default
                ``"tool-response"``.
            agent_reaction: ``"speaks"``, ``"listens"`` or ``"speaks-once"``.
            error_type: ``"undefined"`` or ``"implementation-error"`` (no result then).
            error_message: text of the error, for the model.
        """
        msg: dict[str, Any] = {"type": "client_tool_result", "invocationId": str(call_id)}
        if result is not None:
            msg["result"] = result if isinstance(result, str) else json.dumps(result)
        if response_type is not None:
            msg["responseType"] = response_type
        if agent_reaction is not None:
            msg["agentReaction"] = agent_reaction
        if error_type is not None:
            msg["errorType"] = error_type
        if error_message is not None:
            msg["errorMessage"] = str(error_message)
        return self.send_event(msg)

    client_tool_result = send_tool_result


__all__ = [
    "ULTRAVOX_CAPABILITIES",
    "WebSocketAPIClient",
    "ultravox_capabilities",
]
