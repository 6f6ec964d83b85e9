"""ElevenLabs Agents (Conversational AI) connector: a Voice AI media unit.

Speaks the ``/v1/convai/conversation`` WebSocket protocol with ``websockets``
(see :mod:`connectors.elevenlabs.connect` for why the SDK's ``AsyncConversation``
is not used). Client messages: ``{"user_audio_chunk": base64}``, ``pong``,
``client_tool_result``, ``contextual_update``, ``user_message``, ``user_activity``
(type names from the SDK's ``ClientToOrchestratorEvent``). Server messages as
mapped in :mod:`connectors.elevenlabs.events`.

Media: the audio formats are a setting of the agent, announced by the server in
``conversation_initiation_metadata`` (``user_input_audio_format``,
``agent_output_audio_format``); the client's :attr:`input_format` /
:attr:`output_format` are exactly those, whatever its source sends, so a PCMU call
talking to a ``ulaw_8000`` agent passes through untouched and anything else gets
one resample on the route edge. Frames routed into the client are queued (bounded,
never blocking the 20 ms media clock) and sent by one sender task. Barge-in (on by
default) follows the SDK: on ``interruption`` the sinks' playout is cleared and
later ``audio`` events whose ``event_id`` is not above the interrupted one are
dropped.

Per-turn latency (``VoiceAIEvents.TurnLatency``, also in the session CDR): the
Agents protocol has no speech-end event; the one end-of-turn signal is
``user_transcript``, the finalized transcript the server sends once its turn-taking
has ended the user's turn (``vad_score`` is a raw probability stream and
``interruption`` marks speech *start*). ``speech_end_to_audio_ms`` runs from
receiving ``user_transcript`` to receiving the first played ``audio`` event of the
answer (``event_id`` not below the transcript's, so the tail of an earlier answer
does not count), both on the gateway's clock (``time.perf_counter``): the server's
LLM + TTS time after its end-of-turn decision, without the turn-taking wait itself,
the uplink or playout. One record per ``user_transcript`` that gets an answer with
audio; a barge-in afterwards does not cancel it. ElevenLabs exposes no STT / LLM /
TTS split on this socket: those figures are None.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from connectors.base import EVENT, Capabilities, QueuedVoiceAIClient, frame_excerpt
from connectors.elevenlabs.events import event_name
from connectors.elevenlabs.formats import (
    SUPPORTED_INPUT_FORMATS,
    SUPPORTED_OUTPUT_FORMATS,
    ClientToOrchestratorEvent,
    from_elevenlabs_format,
)
from gateway.media.format import AudioFormat, AudioFrame
from gateway.runtime.events import ErrorSink, Event

log = logging.getLogger(__name__)

#: What ElevenLabs Agents support (any one agent uses one input and one output format).
ELEVENLABS_AGENTS_CAPABILITIES = Capabilities(
    input_formats=SUPPORTED_INPUT_FORMATS,
    output_formats=SUPPORTED_OUTPUT_FORMATS,
    server_vad=True,
    barge_in=True,
    truncation=False,  # the server tracks what was said itself; no client-side cut
    function_calling=True,
    transcripts=True,
)

_ws_log = logging.getLogger("connectors.elevenlabs.websocket")

_PONG = ClientToOrchestratorEvent.PONG.value
_TOOL_RESULT = ClientToOrchestratorEvent.CLIENT_TOOL_RESULT.value


def metadata_formats(metadata: dict[str, Any]) -> tuple[AudioFormat | None, AudioFormat | None]:
    """(input, output) formats a ``conversation_initiation_metadata`` message announces."""
    event = metadata.get("conversation_initiation_metadata_event")
    if not isinstance(event, dict):
        return None, None
    return (from_elevenlabs_format(event.get("user_input_audio_format")),
            from_elevenlabs_format(event.get("agent_output_audio_format")))


def _error_text(data: dict[str, Any]) -> str:
    """What an ``error`` message says: its ``message`` (top level or in ``error_event``)
    with its code, else the message itself (shortened)."""
    body = data.get("error_event") if isinstance(data.get("error_event"), dict) else data
    text = body.get("message") or body.get("reason") or body.get("error")
    code = body.get("code") or body.get("error_code") or body.get("error_type")
    if not text:
        return frame_excerpt(json.dumps(data))
    return f"{text} (code {code})" if code else str(text)


def _event_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class AgentsClient(QueuedVoiceAIClient):
    """A connected ElevenLabs Agents conversation, as a media unit and event target.

    Create it with :func:`~connectors.elevenlabs.connect.create_agents_client`
    (``ElevenLabs.create_agents_client``). Audio routed into it goes to the agent;
    the agent's audio comes out of it. Every server message is dispatched as an
    :class:`~connectors.elevenlabs.events.AgentsEvents` constant with ``event.data``
    (the server JSON) and ``event.client``; ``client_tool_call`` also fires
    ``VoiceAIEvents.ToolCall`` (answer with :meth:`send_tool_result`).

    Request methods never block: they queue the message behind queued audio and
    return an ``asyncio.Future[bool]`` resolving True once written (False if the
    client closed first).

    Errors: a server ``error`` message (after ``AgentsEvents.Error``) and a frame the
    client cannot read (malformed JSON, not an object, a shape it cannot follow)
    dispatch ``VoiceAIEvents.Error`` with a precise ``message``; reading goes on.

    Args:
        connection: an open ``websockets`` client connection after the
            ``conversation_initiation_client_data`` was sent.
        metadata: the server's ``conversation_initiation_metadata`` message.
        agent_id: the agent (for logs and ``repr``).
        barge_in: clear playout on ``interruption`` (default True).
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        max_queued_audio_ms: caller audio waiting beyond this is dropped, oldest first.
        min_chunk_ms: caller audio is sent in chunks of at least this many ms.
        owner: the owning session (default: the one running now).

    Raises:
        ValueError: the metadata announces a format the gateway cannot handle.
    """

    capabilities = ELEVENLABS_AGENTS_CAPABILITIES
    vendor = "elevenlabs"
    coalesce_ms = 250

    def __init__(
        self,
        connection: Any,
        metadata: dict[str, Any],
        *,
        agent_id: str = "",
        barge_in: bool = True,
        on_websocket_closed: Callable[[Event], Any] | None = None,
        max_queued_audio_ms: float = 2000.0,
        min_chunk_ms: int = 20,
        owner: ErrorSink | None = None,
    ) -> None:
        fin, fout = metadata_formats(metadata)
        event = metadata.get("conversation_initiation_metadata_event") or {}
        if fin is None or fout is None:
            raise ValueError(
                "elevenlabs: unsupported audio formats in conversation_initiation_metadata: "
                f"in={event.get('user_input_audio_format')!r} "
                f"out={event.get('agent_output_audio_format')!r}")
        super().__init__(owner, on_websocket_closed=on_websocket_closed,
                         max_queued_audio_ms=max_queued_audio_ms, min_chunk_ms=min_chunk_ms)
        # This conversation's formats are fixed by the agent: narrow the record.
        self.capabilities = dataclasses.replace(
            ELEVENLABS_AGENTS_CAPABILITIES, input_formats=(fin,), output_formats=(fout,))
        self.input_format = fin
        self.output_format = fout
        self._conn = connection
        self.agent_id = agent_id
        self.barge_in = barge_in
        self._last_interrupt_id = 0
        #: The server's ``conversation_initiation_metadata`` message.
        self.metadata: dict[str, Any] = metadata
        #: The conversation id the server assigned.
        self.conversation_id: str = str(event.get("conversation_id") or "")
        #: Agent audio events dropped because they belonged to an interrupted turn.
        self.dropped_audio_events = 0
        #: perf_counter() of the unanswered ``user_transcript``, and its event_id.
        self._transcript_at: float | None = None
        self._transcript_id: int | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<ElevenLabs AgentsClient agent={self.agent_id!r} "
                f"conversation={self.conversation_id!r} {state} "
                f"in={self.input_format} out={self.output_format}>")

    @property
    def server_input_format(self) -> AudioFormat:
        """The format the agent takes (``user_input_audio_format``)."""
        return self.capabilities.input_formats[0]

    @property
    def server_output_format(self) -> AudioFormat:
        """The format the agent produces (``agent_output_audio_format``)."""
        return self.capabilities.output_formats[0]

    # -- formats ------------------------------------------------------------------
    def choose_formats(self, source_format: AudioFormat | None,
                       ) -> tuple[AudioFormat, AudioFormat]:
        """Always the agent's formats: G.711 passthrough when the call matches, else
        one conversion on each route edge (the protocol cannot switch formats)."""
        return self.server_input_format, self.server_output_format

    # -- lifecycle ----------------------------------------------------------------
    def _start(self, early: list[dict[str, Any]]) -> None:
        """Start reader and sender; the metadata and ``early`` messages are handled first."""
        self._start_tasks(self._read_loop([self.metadata, *early]))

    async def _close_transport(self, already: bool) -> None:
        if not already:
            try:
                await asyncio.wait_for(self._conn.close(), 5.0)
            except Exception as exc:
                log.debug("elevenlabs: websocket close failed: %r", exc)

    # -- tasks --------------------------------------------------------------------
    async def _read_loop(self, first: list[dict[str, Any]]) -> None:
        await self._guard_reader(lambda: self._receive(first))

    async def _receive(self, first: list[dict[str, Any]]) -> None:
        for data in first:
            self._handle(data)
        while True:
            self._handle_frame(await self._conn.recv(), self._handle, "message")

    async def _write_audio(self, data: bytes) -> None:
        await self._send({"user_audio_chunk": base64.b64encode(data).decode("ascii")})

    async def _write_event(self, kind: str, payload: Any) -> None:
        await self._send(payload)

    def _describe(self, kind: str, payload: Any) -> Any:
        return payload.get("type", "audio") if isinstance(payload, dict) else "audio"

    async def _send(self, msg: dict[str, Any]) -> None:
        await self._conn.send(json.dumps(msg, separators=(",", ":")))

    # -- server messages ------------------------------------------------------------
    def _handle(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "audio":
            if not self._on_audio(data):
                return  # part of an interrupted turn: never played, not dispatched
        elif kind == "interruption":
            ev = data.get("interruption_event")
            eid = _event_id(ev.get("event_id")) if isinstance(ev, dict) else None
            if eid is not None:
                self._last_interrupt_id = max(self._last_interrupt_id, eid)
            if self.barge_in:
                self.clear_media_buffer()
        elif kind == "user_transcript":
            ev = data.get("user_transcription_event")
            self._transcript_at = time.perf_counter()
            self._transcript_id = _event_id(ev.get("event_id")) if isinstance(ev, dict) else None
        elif kind == "ping":
            ev = data.get("ping_event")
            if isinstance(ev, dict) and "event_id" in ev:
                self.send_event({"type": _PONG, "event_id": ev["event_id"]})
        self.dispatch(event_name(kind if isinstance(kind, str) else None), data=data, client=self)
        if kind == "error":
            self._dispatch_error(f"elevenlabs reported an error: {_error_text(data)}", data)
        if kind == "client_tool_call":
            call = data.get("client_tool_call")
            if isinstance(call, dict):
                self._dispatch_tool_call(str(call.get("tool_name") or ""),
                                         str(call.get("tool_call_id") or ""),
                                         call.get("parameters"), data)

    def _on_audio(self, data: dict[str, Any]) -> bool:
        """Emit one ``audio`` event; False when it belongs to an interrupted turn."""
        ev = data.get("audio_event")
        if not isinstance(ev, dict):
            return True
        eid = _event_id(ev.get("event_id"))
        if eid is not None and eid <= self._last_interrupt_id:
            self.dropped_audio_events += 1
            return False
        try:
            audio = base64.b64decode(ev.get("audio_base_64") or "", validate=False)
        except ValueError:
            log.warning("elevenlabs: bad base64 in an audio event")
            return True
        if audio and not self._closed:
            if self._transcript_at is not None and (
                    eid is None or self._transcript_id is None or eid >= self._transcript_id):
                elapsed = (time.perf_counter() - self._transcript_at) * 1000.0
                self._transcript_at = self._transcript_id = None
                self._report_turn_latency(speech_end_to_audio_ms=elapsed)
            self._emit(AudioFrame(audio, self.server_output_format))
        return True

    # -- client messages ----------------------------------------------------------------
    def send_event(self, event: dict[str, Any]) -> asyncio.Future[bool]:
        """Queue any client message (a dict) after queued audio.

        Returns:
            A future resolving True once sent, False if the client closed first.
        """
        return self._queue(EVENT, event, event.get("type"))

    def send_tool_result(self, call_id: str, result: Any, *,
                         is_error: bool = False) -> asyncio.Future[bool]:
        """Answer a ``client_tool_call`` with ``client_tool_result``.

        Args:
            call_id: ``tool_call_id`` (``event.call_id`` of ``VoiceAIEvents.ToolCall``).
            result: the result; a str is sent as is, anything else as JSON text.
            is_error: the tool failed; ``result`` describes the error.
        """
        return self.send_event({
            "type": _TOOL_RESULT,
            "tool_call_id": str(call_id),
            "result": result if isinstance(result, str) else json.dumps(result),
            "is_error": bool(is_error),
        })

    def send_contextual_update(self, text: str) -> asyncio.Future[bool]:
        """Send ``contextual_update``: information for the agent that does not interrupt."""
        return self.send_event({"type": ClientToOrchestratorEvent.CONTEXTUAL_UPDATE.value,
                                "text": text})

    def send_user_message(self, text: str) -> asyncio.Future[bool]:
        """Send ``user_message``: text as if the user said it."""
        return self.send_event({"type": ClientToOrchestratorEvent.USER_MESSAGE.value,
                                "text": text})

    def register_user_activity(self) -> asyncio.Future[bool]:
        """Send ``user_activity`` (keeps the agent from speaking over a busy user)."""
        return self.send_event({"type": ClientToOrchestratorEvent.USER_ACTIVITY.value})
