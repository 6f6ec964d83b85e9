"""OpenAI Realtime API (GA) connector: a Voice AI media unit on the official SDK.

Follows the GA Realtime protocol as typed by the ``openai`` SDK
(``openai.types.realtime``): client events ``session.update``,
``input_audio_buffer.append``/``clear``/``commit``, ``conversation.item.create``/
``truncate``, ``response.create``/``cancel``; server events as mapped in
:mod:`connectors.openai.events`. The connection is made with
``AsyncOpenAI(...).realtime.connect(model=...)``; the beta protocol is never used.

Media: frames routed into the client are queued (bounded, never blocking the 20 ms
media clock) and sent by one sender task as base64 ``input_audio_buffer.append``;
``response.output_audio.delta`` audio is emitted to the client's sinks. Barge-in
(on by default) follows Twilio's OpenAI Realtime sample: on
``input_audio_buffer.speech_started`` the sink's playout buffer is cleared and the
assistant item is truncated at the position actually played.

Per-turn latency (``VoiceAIEvents.TurnLatency``, also in the session CDR): one
record per user turn the server VAD (``server_vad`` / ``semantic_vad``) detected.
``speech_end_to_audio_ms`` runs from receiving ``input_audio_buffer.speech_stopped``
to receiving the first non-empty ``response.output_audio.delta`` of a response
created after it (a function-call response in between is part of the turn; the
turn is reported once, even if the user barges in afterwards). Both ends are read
on the gateway's clock (``time.perf_counter``) as the events arrive, so the figure
is the server's time from its end-of-speech decision to its first audio plus the
difference in network delay between the two events; it does not include the
uplink, the VAD's ``silence_duration_ms`` before the decision, nor playout. A
``response.create`` the scenario sends without user speech is not a user turn,
and with turn detection off (no ``speech_stopped``) nothing is reported. OpenAI
exposes no STT / LLM / TTS split: ``stt_ms``, ``llm_first_token_ms`` and
``tts_first_byte_ms`` are None.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.base import (
    AUDIO,
    EVENT,
    Capabilities,
    QueuedVoiceAIClient,
    first_played_sink,
    frame_excerpt,
)
from connectors.openai.events import event_name
from connectors.openai.formats import (
    SUPPORTED_FORMATS,
    session_formats,
    to_openai_format,
)
from gateway.media.format import PCM16_24K, AudioFormat, AudioFrame
from gateway.runtime.events import ErrorSink, Event

log = logging.getLogger(__name__)

#: What the OpenAI Realtime API supports.
OPENAI_REALTIME_CAPABILITIES = Capabilities(
    input_formats=SUPPORTED_FORMATS,
    output_formats=SUPPORTED_FORMATS,
    server_vad=True,
    barge_in=True,
    truncation=True,
    function_calling=True,
    transcripts=True,
)

class _RedactSecrets(logging.Filter):
    """Hides credential headers in the websockets handshake debug log."""

    _SECRET_HEADERS = frozenset({"authorization", "openai-organization", "openai-project"})

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[0], str)
            and args[0].lower() in self._SECRET_HEADERS
        ):
            record.args = (args[0], "[redacted]")
        return True


#: Logger handed to the websockets library (it logs handshake headers at DEBUG).
_ws_log = logging.getLogger("connectors.openai.websocket")
_ws_log.addFilter(_RedactSecrets())


@dataclass(slots=True)
class _AudioItem:
    """Playout bookkeeping of one assistant audio item (for truncation)."""

    item_id: str
    content_index: int
    #: Sink position (ms, played + queued) where the item's first sample plays;
    #: None when no sink reports ``played_ms``.
    start_ms: float | None
    #: Audio received so far for this item, in ms.
    audio_ms: float = 0.0
    #: ``response.output_audio.done`` arrived for the item.
    done: bool = False
    #: Cut by barge-in; later deltas of the item are dropped.
    truncated: bool = False


class RealtimeAPIClient(QueuedVoiceAIClient):
    """A connected OpenAI Realtime API session, as a media unit and event target.

    Create it with :func:`create_realtime_api_client` (``OpenAI.create_realtime_api_client``).
    Audio routed into it goes to OpenAI; the model's audio comes out of it. Every
    server event is dispatched as an :class:`~connectors.openai.events.RealtimeAPIEvents`
    constant with ``event.data`` (the server JSON, a dict) and ``event.client``.

    Request methods (``session_update``, ``response_create`` ...) never block: they
    queue the event behind any queued audio, keeping order, and return an
    ``asyncio.Future[bool]`` that resolves True once it is written to the socket
    (False if the client closed first). Awaiting it is optional.

    Errors: a server ``error`` event (after ``RealtimeAPIEvents.Error``) and a frame
    the client cannot read (malformed JSON, not an object, a shape it cannot follow)
    dispatch ``VoiceAIEvents.Error`` with a precise ``message``; reading goes on.

    Args:
        connection: an entered ``AsyncRealtimeConnection`` from the SDK.
        sdk_client: the ``AsyncOpenAI`` that made it (closed with this client).
        model: the model name (for logs and ``repr``).
        barge_in: clear playout and truncate the assistant item on user speech.
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        max_queued_audio_ms: audio waiting to be sent beyond this is dropped,
            oldest first (the vendor link is slower than real time).
        min_chunk_ms: audio is sent in appends of at least this many ms.
        owner: the owning session (default: the one running now).
    """

    capabilities = OPENAI_REALTIME_CAPABILITIES
    vendor = "openai"

    def __init__(
        self,
        connection: Any,
        *,
        sdk_client: Any = None,
        model: str = "",
        barge_in: bool = True,
        on_websocket_closed: Callable[[Event], Any] | None = None,
        max_queued_audio_ms: float = 2000.0,
        min_chunk_ms: int = 20,
        owner: ErrorSink | None = None,
    ) -> None:
        super().__init__(owner, on_websocket_closed=on_websocket_closed,
                         max_queued_audio_ms=max_queued_audio_ms, min_chunk_ms=min_chunk_ms)
        self._conn = connection
        self._sdk = sdk_client
        self.model = model
        self.barge_in = barge_in
        #: Formats the server last confirmed (session.created / session.updated).
        self._server_in: AudioFormat = PCM16_24K
        self._server_out: AudioFormat = PCM16_24K
        self._out_converter: Any = None
        self._item: _AudioItem | None = None
        #: The session object of the last ``session.created``/``session.updated``.
        self.session: dict[str, Any] = {}
        #: perf_counter() when the unanswered user turn's ``speech_stopped`` arrived.
        self._speech_end: float | None = None
        #: Responses created since then: their first audio answers the turn.
        self._turn_responses: set[str] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<OpenAI RealtimeAPIClient model={self.model!r} {state} "
            f"in={self.input_format} out={self.output_format}>"
        )

    # -- lifecycle --------------------------------------------------------------
    def _start(self, first_event: dict[str, Any] | None) -> None:
        """Start the reader and sender tasks; ``first_event`` is dispatched first."""
        self._start_tasks(self._read_loop(first_event))

    async def close(self) -> None:
        """Close the WebSocket (code 1000) and drop every media route; idempotent.

        ``WebSocketClosed`` is dispatched (once) before this returns. The calls
        this client was connected to are left alone.
        """
        await super().close()
        await self._close_sdk()

    async def _close_transport(self, already: bool) -> None:
        if not already:
            try:
                await asyncio.wait_for(self._conn.close(), 5.0)
            except Exception as exc:  # already gone: nothing left to close
                log.debug("openai: websocket close failed: %r", exc)

    async def _close_sdk(self) -> None:
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            try:
                await sdk.close()
            except Exception as exc:
                log.debug("openai: closing the SDK client failed: %r", exc)

    # -- tasks --------------------------------------------------------------------
    async def _read_loop(self, first_event: dict[str, Any] | None) -> None:
        await self._guard_reader(lambda: self._receive(first_event))

    async def _receive(self, first_event: dict[str, Any] | None) -> None:
        if first_event is not None:
            self._handle(first_event)
        while True:
            self._handle_frame(await self._conn.recv_bytes(), self._handle, "event")

    async def _reader_finished(self) -> None:
        if self._sdk is not None:
            await self._close_sdk()

    async def _write_audio(self, data: bytes) -> None:
        await self._write({"type": "input_audio_buffer.append",
                           "audio": base64.b64encode(data).decode("ascii")})

    async def _write_event(self, kind: str, payload: Any) -> None:
        await self._write(payload)

    def _describe(self, kind: str, payload: Any) -> Any:
        return "input_audio_buffer.append" if kind == AUDIO else payload.get("type")

    async def _write(self, msg: dict[str, Any]) -> None:
        send_raw = getattr(self._conn, "send_raw", None)
        if send_raw is not None:
            await send_raw(json.dumps(msg, separators=(",", ":")))
        else:  # SDKs before send_raw: the typed send (validates, a bit slower)
            await self._conn.send(msg)

    # -- server events --------------------------------------------------------------
    def _handle(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "response.output_audio.delta":
            if self._speech_end is not None and data.get("delta"):
                self._turn_answered(data.get("response_id"))
            self._on_audio_delta(data)
        elif kind == "response.output_audio.done":
            item = self._item
            if item is not None and item.item_id == data.get("item_id"):
                item.done = True
        elif kind == "input_audio_buffer.speech_started":
            # A new user turn: an earlier one not answered yet merges into it.
            self._speech_end = None
            self._turn_responses.clear()
            if self.barge_in:
                self.clear_media_buffer()
        elif kind == "input_audio_buffer.speech_stopped":
            self._speech_end = time.perf_counter()
            self._turn_responses.clear()
        elif kind == "response.created":
            response = data.get("response")
            if self._speech_end is not None and isinstance(response, dict):
                self._turn_responses.add(str(response.get("id") or ""))
        elif kind in ("session.created", "session.updated"):
            self._on_session(data.get("session"))
        self.dispatch(event_name(kind if isinstance(kind, str) else None),
                      data=data, client=self)
        if kind == "error":
            err = data.get("error") if isinstance(data.get("error"), dict) else {}
            what = "/".join(str(v) for v in (err.get("type"), err.get("code")) if v)
            self._dispatch_error(
                f"openai reported an error{f' ({what})' if what else ''}: "
                f"{err.get('message') or frame_excerpt(json.dumps(data))}", data)
        if kind == "response.function_call_arguments.done":
            self._dispatch_tool_call(str(data.get("name") or ""), str(data.get("call_id") or ""),
                                     data.get("arguments"), data)

    def _turn_answered(self, response_id: Any) -> None:
        """First audio of ``response_id``: report the user turn if the response
        was created after the turn's ``speech_stopped``."""
        if str(response_id or "") not in self._turn_responses or self._speech_end is None:
            return
        elapsed = (time.perf_counter() - self._speech_end) * 1000.0
        self._speech_end = None
        self._turn_responses.clear()
        self._report_turn_latency(speech_end_to_audio_ms=elapsed)

    def _on_session(self, session: Any) -> None:
        if not isinstance(session, dict):
            return
        self.session = session
        fin, fout = session_formats(session)
        if fin is not None:
            self._server_in = fin
        if fout is not None and fout != self._server_out:
            self._server_out = fout
            self._out_converter = None

    def _on_audio_delta(self, data: dict[str, Any]) -> None:
        item_id = str(data.get("item_id") or "")
        item = self._item
        if item is not None and item.item_id == item_id and item.truncated:
            return  # the user barged in: what is left of this item is never played
        try:
            audio = base64.b64decode(data.get("delta") or "", validate=False)
        except ValueError:
            log.warning("openai: bad base64 in response.output_audio.delta")
            return
        if not audio:
            return
        if item is None or item.item_id != item_id:
            sink = first_played_sink(self.media_sinks)
            start = None
            if sink is not None:
                start = float(sink.played_ms) + float(getattr(sink, "queued_ms", 0.0) or 0.0)
            item = _AudioItem(item_id, int(data.get("content_index") or 0), start)
            self._item = item
        item.audio_ms += self._server_out.duration_ms(len(audio))
        out_fmt = self.output_format or self._server_out
        if self._server_out != out_fmt:
            # A format switch is in flight: convert what the server still sends.
            if self._out_converter is None or self._out_converter.dst != out_fmt:
                from gateway.media.convert import FormatConverter

                self._out_converter = FormatConverter(self._server_out, out_fmt)
            audio = self._out_converter.convert(audio)
        if self._closed:
            return
        self._emit(AudioFrame(audio, out_fmt))

    # -- barge-in -------------------------------------------------------------------
    def clear_media_buffer(self) -> None:
        """Stop the AI's current audio now: clear the sinks' playout, truncate the item.

        The assistant item being played is truncated at the position the playout
        sink (the sink with ``played_ms``) reports as actually played, so the
        model's context holds only what the caller heard. Later deltas of that
        item are dropped. Called automatically on ``InputAudioBufferSpeechStarted``
        when ``barge_in`` is on (before scenario handlers run).
        """
        item = self._item
        sink = first_played_sink(self.media_sinks)
        played: float | None = None
        if item is not None and not item.truncated and item.start_ms is not None and sink:
            played = min(max(float(sink.played_ms) - item.start_ms, 0.0), item.audio_ms)
        super().clear_media_buffer()
        if item is None or item.truncated:
            return
        item.truncated = True
        if played is None:
            log.debug("openai: no playout sink reports played_ms; item %s not truncated",
                      item.item_id)
            return
        if played < item.audio_ms or not item.done:
            self.conversation_item_truncate(item.item_id, item.content_index, int(played))

    def played_position(self) -> tuple[str, float] | None:
        """(item_id, ms played) of the current assistant audio item, if known."""
        item = self._item
        sink = first_played_sink(self.media_sinks)
        if item is None or item.start_ms is None or sink is None:
            return None
        return item.item_id, min(max(float(sink.played_ms) - item.start_ms, 0.0), item.audio_ms)

    def _apply_formats(self, fmt: AudioFormat) -> None:
        # Audio collected so far is in the old format: queue it before the update.
        self._flush_pending()
        log.info("openai: switching audio to %s", fmt)
        self.session_update()

    # -- client events ----------------------------------------------------------------
    def send_event(self, event: dict[str, Any]) -> asyncio.Future[bool]:
        """Queue any GA client event (a dict with ``type``) after queued audio.

        Returns:
            A future resolving True once sent, False if the client closed first.
        """
        return self._queue(EVENT, event, event.get("type"))

    def session_update(
        self, session: dict[str, Any] | None = None, **fields: Any
    ) -> asyncio.Future[bool]:
        """Send ``session.update`` with GA session fields (``instructions``, ``tools``,
        ``audio``, ``output_modalities`` ...), given as a dict and/or keywords.

        ``type`` defaults to ``"realtime"``. The audio formats are owned by the
        connector (they follow the call): ``audio.input.format`` and
        ``audio.output.format`` are always set to the client's current formats.
        """
        body = copy.deepcopy(dict(session or {}))
        body.update(copy.deepcopy(fields))
        body.setdefault("type", "realtime")
        self._pin_formats(body)
        return self.send_event({"type": "session.update", "session": body})

    def _pin_formats(self, body: dict[str, Any]) -> None:
        audio = body.get("audio")
        if not isinstance(audio, dict):
            audio = body["audio"] = {}
        for key, fmt in (("input", self.input_format), ("output", self.output_format)):
            if fmt is None:
                continue
            part = audio.get(key)
            if not isinstance(part, dict):
                part = audio[key] = {}
            wanted = to_openai_format(fmt)
            given = part.get("format")
            if given is not None and given != wanted:
                log.warning("openai: audio.%s.format %r replaced by %r (it follows the call)",
                            key, given, wanted)
            part["format"] = wanted

    def response_create(
        self, response: dict[str, Any] | None = None, **fields: Any
    ) -> asyncio.Future[bool]:
        """Send ``response.create``, optionally with GA response fields
        (``instructions``, ``output_modalities``, ``tool_choice`` ...)."""
        body = dict(response or {})
        body.update(fields)
        event: dict[str, Any] = {"type": "response.create"}
        if body:
            event["response"] = body
        return self.send_event(event)

    def response_cancel(self, response_id: str | None = None) -> asyncio.Future[bool]:
        """Send ``response.cancel`` (the in-progress response, or ``response_id``)."""
        event: dict[str, Any] = {"type": "response.cancel"}
        if response_id:
            event["response_id"] = response_id
        return self.send_event(event)

    def conversation_item_create(
        self, item: dict[str, Any], previous_item_id: str | None = None
    ) -> asyncio.Future[bool]:
        """Send ``conversation.item.create`` with a GA conversation item."""
        event: dict[str, Any] = {"type": "conversation.item.create", "item": item}
        if previous_item_id is not None:
            event["previous_item_id"] = previous_item_id
        return self.send_event(event)

    def conversation_item_truncate(
        self, item_id: str, content_index: int, audio_end_ms: int
    ) -> asyncio.Future[bool]:
        """Send ``conversation.item.truncate``: cut assistant ``item_id`` at ``audio_end_ms``.

        Args:
            item_id: the assistant item.
            content_index: its audio content part (0).
            audio_end_ms: position to cut at, in ms of the item's audio.
        """
        return self.send_event({
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": int(content_index),
            "audio_end_ms": max(int(audio_end_ms), 0),
        })

    def input_audio_buffer_clear(self) -> asyncio.Future[bool]:
        """Drop caller audio not yet sent and send ``input_audio_buffer.clear``."""
        self._clear_queued_audio()
        return self.send_event({"type": "input_audio_buffer.clear"})

    def input_audio_buffer_commit(self) -> asyncio.Future[bool]:
        """Send ``input_audio_buffer.commit`` (turn detection off: end of the user turn)."""
        return self.send_event({"type": "input_audio_buffer.commit"})

    def send_tool_result(
        self, call_id: str, result: Any, *, create_response: bool = True
    ) -> asyncio.Future[bool]:
        """Answer a function call: a ``function_call_output`` item, then ``response.create``.

        Args:
            call_id: ``call_id`` of the ``ResponseFunctionCallArgumentsDone`` event.
            result: the output; a str is sent as is, anything else as JSON.
            create_response: also send ``response.create`` so the model speaks.
        """
        output = result if isinstance(result, str) else json.dumps(result)
        fut = self.conversation_item_create(
            {"type": "function_call_output", "call_id": str(call_id), "output": output}
        )
        if create_response:
            fut = self.response_create()
        return fut
