"""The contract every Voice AI connector implements (ARCHITECTURE.md, "connectors/").

A connector is a :class:`VoiceAIClient`: a media unit (the caller's audio goes
in, the AI's audio comes out) and an event target (scenario code subscribes to
vendor events). Each connector declares what its vendor supports in a
:class:`Capabilities` record (after LiveKit Agents' ``RealtimeCapabilities``) and
takes one :class:`ConnectOptions` policy for connecting (retries, backoff, timeout).

Format choice: when a call whose output is a G.711 law the vendor accepts becomes
this unit's source, the connector switches both directions to that law, so the
route edges pass audio through untouched. Otherwise it uses PCM16 at the vendor's
preferred rate and the route edge does the one resample.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.errors import GatewayError
from gateway.media.format import AudioFormat, AudioFrame
from gateway.runtime.context import current_session
from gateway.runtime.events import ErrorSink, Event, EventTarget
from gateway.runtime.media_unit import MediaUnit

log = logging.getLogger(__name__)

T = TypeVar("T")


class ConnectorError(GatewayError):
    """A Voice AI connector could not connect, or its vendor refused a request.

    Attributes:
        vendor: short vendor name ("openai").
        retryable: whether trying again later may succeed (network, timeout, 5xx).
    """

    def __init__(
        self,
        message: str,
        *,
        vendor: str = "",
        retryable: bool = False,
        session_id: str | None = None,
        call_id: str | None = None,
    ) -> None:
        super().__init__(message, session_id=session_id, call_id=call_id)
        self.vendor = vendor
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a Voice AI vendor supports.

    Attributes:
        input_formats: audio formats the vendor accepts from us, preferred first.
        output_formats: audio formats the vendor can produce, preferred first.
        server_vad: the vendor detects user speech turns itself.
        barge_in: the connector can interrupt the AI when the user speaks.
        truncation: the vendor can cut an assistant item at the position played.
        function_calling: the vendor calls tools (functions) defined by the scenario.
        transcripts: the vendor reports transcripts of both sides.
    """

    input_formats: tuple[AudioFormat, ...]
    output_formats: tuple[AudioFormat, ...]
    server_vad: bool = False
    barge_in: bool = False
    truncation: bool = False
    function_calling: bool = False
    transcripts: bool = False

    @property
    def pcm_input(self) -> AudioFormat:
        """The vendor's preferred PCM16 input (16 kHz for Gemini Live, 24 kHz for OpenAI).

        Raises:
            ValueError: the vendor accepts no PCM16 input.
        """
        for fmt in self.input_formats:
            if not fmt.encoding.is_g711:
                return fmt
        raise ValueError("capabilities list no PCM16 input format")

    @property
    def pcm_output(self) -> AudioFormat:
        """The vendor's preferred PCM16 output (24 kHz for Gemini Live and OpenAI).

        Raises:
            ValueError: the vendor produces no PCM16 output.
        """
        for fmt in self.output_formats:
            if not fmt.encoding.is_g711:
                return fmt
        raise ValueError("capabilities list no PCM16 output format")

    @property
    def preferred_pcm(self) -> AudioFormat:
        """The first PCM16 format both directions accept (the fallback format).

        Raises:
            ValueError: the vendor has no common PCM16 format.
        """
        for fmt in self.input_formats:
            if not fmt.encoding.is_g711 and fmt in self.output_formats:
                return fmt
        raise ValueError("capabilities list no PCM16 format accepted both ways")


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How a connector connects: one policy object instead of many keywords.

    Attributes:
        retries: extra attempts after the first failed one (0: try once).
        backoff: seconds to wait before the first retry; doubled on every further
            retry, capped at ``max_backoff``.
        max_backoff: upper bound of one wait, in seconds.
        timeout: seconds one attempt may take (TCP + TLS + WebSocket handshake and
            the vendor's first event), after which it counts as failed.
    """

    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    timeout: float = 10.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return min(self.backoff * (2 ** max(retry - 1, 0)), self.max_backoff)


_SDK_CLIENTS: OrderedDict[tuple[Any, ...], asyncio.Future[Any]] = OrderedDict()
_SDK_CLIENTS_MAX = 32


async def shared_sdk_client(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """One vendor SDK client per (event loop, ``key``), built in a worker thread.

    Building an SDK client loads TLS trust stores and more (OpenAI ~40 ms,
    google-genai 100-220 ms of blocking work); done on the event loop it stalls
    every call's 20 ms media clock, so the first call of a kind builds it off the
    loop and later calls reuse it. Concurrent first calls share one build. At most
    32 clients are kept (least recently used first out).

    Raises:
        Whatever ``build`` raises (the failed build is not cached).
    """
    loop = asyncio.get_running_loop()
    full_key = (id(loop), *key)
    fut = _SDK_CLIENTS.get(full_key)
    if fut is None or (fut.done() and fut.exception() is not None):
        fut = loop.create_future()
        _SDK_CLIENTS[full_key] = fut
        while len(_SDK_CLIENTS) > _SDK_CLIENTS_MAX:
            _SDK_CLIENTS.popitem(last=False)
        try:
            fut.set_result(await asyncio.to_thread(build))
        except asyncio.CancelledError:
            _SDK_CLIENTS.pop(full_key, None)
            fut.cancel()
            raise
        except BaseException as exc:
            _SDK_CLIENTS.pop(full_key, None)
            fut.set_exception(exc)
            fut.exception()  # retrieved: the caller re-raises it below
            raise
    else:
        _SDK_CLIENTS.move_to_end(full_key)
    return await asyncio.shield(fut)


async def connect_with_retries(
    attempt: Callable[[], Awaitable[T]],
    options: ConnectOptions,
    *,
    vendor: str,
    is_retryable: Callable[[BaseException], bool] = lambda exc: True,
    describe: Callable[[BaseException], str] = lambda exc: f"{type(exc).__name__}: {exc}",
) -> T:
    """Run ``attempt`` under ``options``: per-attempt timeout, retries with backoff.

    Args:
        attempt: makes one connection attempt and returns the connection.
        options: the retry/timeout policy.
        vendor: vendor name for the error message.
        is_retryable: False for failures another attempt cannot fix (bad API key).
        describe: renders a failure for the error message; must not reveal secrets.

    Raises:
        ConnectorError: every attempt failed; chained to the last failure.
    """
    last: BaseException | None = None
    tries = max(options.retries, 0) + 1
    made = 0
    for n in range(tries):
        if n:
            await asyncio.sleep(options.delay(n))
        made += 1
        try:
            return await asyncio.wait_for(attempt(), options.timeout)
        except ConnectorError as exc:
            last = exc
            if not exc.retryable:
                raise
        except TimeoutError as exc:
            last = exc
        except Exception as exc:
            last = exc
            if not is_retryable(exc):
                break
        log.info("%s: connection attempt %d/%d failed: %s", vendor, n + 1, tries,
                 _describe(last, describe))
    assert last is not None
    if isinstance(last, ConnectorError):
        raise last
    what = "timed out" if isinstance(last, TimeoutError) else _describe(last, describe)
    raise ConnectorError(
        f"{vendor}: could not connect after {made} attempt(s): {what}",
        vendor=vendor,
        retryable=is_retryable(last),
    ) from last


def _describe(exc: BaseException, describe: Callable[[BaseException], str]) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return describe(exc)


def frame_excerpt(raw: bytes | str, limit: int = 120) -> str:
    """The start of a vendor frame for an error message: quoted, with its length when cut
    (``'{not json'`` or ``'{"type": ...'... (4096 chars)``)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} chars)"


class VoiceAIEvents:
    """Events every Voice AI connector dispatches under the same name.

    ``ToolCall``: the AI calls a function; payload ``name`` (str), ``call_id`` (str),
    ``arguments`` (dict, parsed from the vendor's JSON), ``data`` (the vendor message),
    ``client``. Answer with ``client.send_tool_result(call_id, result)``.

    ``WebSocketClosed``: the vendor connection is gone; payload ``code`` (RFC 6455
    close code, 1006 when it dropped), ``reason``, ``client``. The call is not hung up.

    ``Error``: the vendor reported an error, or sent a message the connector could not
    read (malformed JSON); payload ``message`` (str, precise), ``data`` (the vendor
    message, or ``{"raw": ...}`` for an unreadable one), ``client``. The vendor's own
    error event (``RealtimeAPIEvents.Error`` ...) fires too. The client may still be
    open; ``WebSocketClosed`` follows when the vendor ends the connection.

    ``TurnLatency``: one user turn was answered; payload ``turn`` (1-based), and the
    figures in ms the vendor exposes, each None when unknown: ``speech_end_to_audio_ms``
    (user speech end -> first AI audio byte), ``stt_ms``, ``llm_first_token_ms``,
    ``tts_first_byte_ms``; plus ``vendor`` and ``client``. The session's CDR keeps every
    turn (``SessionRecord.voice_ai_turns``, ``GetCallHistory``'s ``voice_ai_turns``).
    """

    ToolCall = "VoiceAIEvents.ToolCall"
    WebSocketClosed = "VoiceAIEvents.WebSocketClosed"
    Error = "VoiceAIEvents.Error"
    TurnLatency = "VoiceAIEvents.TurnLatency"


class VoiceAIClient(MediaUnit, EventTarget):
    """Base class of every Voice AI connector: a media unit and an event target.

    Subclasses set :attr:`capabilities`, implement :meth:`close`, and override
    :meth:`_apply_formats` to tell the vendor about a format switch. Their
    ``_on_media`` receives frames already in :attr:`input_format`; they
    ``_emit`` vendor audio in :attr:`output_format`.

    Args:
        owner: the session that hears about failing handlers; defaults to the
            session running now. When that session has ``register_unit``, the
            client registers itself so the session closes it when it ends.
    """

    #: What the vendor supports; every subclass sets its own.
    capabilities: Capabilities = Capabilities(input_formats=(), output_formats=())
    #: Short vendor name used in logs and errors.
    vendor: str = "voice-ai"

    def __init__(self, owner: ErrorSink | None = None) -> None:
        MediaUnit.__init__(self)
        EventTarget.__init__(self, owner)
        self.input_format = self.capabilities.pcm_input
        self.output_format = self.capabilities.pcm_output
        self._closed = False
        self._turns = 0  # user turns answered (TurnLatency)
        session = owner if owner is not None else current_session.get(None)
        register = getattr(session, "register_unit", None)
        if callable(register):
            register(self)

    def send_tool_result(self, call_id: str, result: Any) -> Any:
        """Answer a ``VoiceAIEvents.ToolCall`` with ``result`` (JSON-serialisable or str).

        Each connector maps this onto its vendor's message (OpenAI
        ``function_call_output``, Gemini ``toolResponse``, ...).
        """
        raise NotImplementedError

    def _dispatch_tool_call(self, name: str, call_id: str, arguments: Any,
                            data: dict[str, Any]) -> None:
        """Dispatch ``VoiceAIEvents.ToolCall``; ``arguments`` may be a JSON string or a dict."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = {"_raw": arguments}
        self.dispatch(VoiceAIEvents.ToolCall, name=name, call_id=call_id,
                      arguments=arguments if arguments is not None else {}, data=data,
                      client=self)

    def _dispatch_error(self, message: str, data: dict[str, Any] | None = None) -> None:
        """Log ``message`` with the session id and dispatch ``VoiceAIEvents.Error``."""
        session = self._owner_session()
        sid = getattr(session, "id", "-")
        log.warning("[session %s] %s: %s", sid, self.vendor, message)
        log_line = getattr(session, "log_line", None)
        if callable(log_line):
            log_line(f"{self.vendor}: error: {message}", logging.WARNING)
        self.dispatch(VoiceAIEvents.Error, message=message, data=dict(data or {}), client=self)

    def _malformed(self, raw: bytes | str, why: str, what: str = "JSON") -> None:
        """A vendor frame the client cannot read: ``VoiceAIEvents.Error`` with a precise
        message and an excerpt; reading goes on."""
        excerpt = frame_excerpt(raw)
        self._dispatch_error(f"malformed {what} from {self.vendor}: {why}: {excerpt}",
                             {"raw": excerpt})

    def _handle_frame(self, raw: bytes | str, handle: Callable[[dict[str, Any]], Any],
                      what: str = "message") -> None:
        """Parse one JSON text frame and pass the object to ``handle``; an unreadable
        frame, a non-object, or a shape ``handle`` cannot follow becomes
        :meth:`_malformed` instead of ending the connection."""
        try:
            data = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            self._malformed(raw, str(exc))
            return
        if not isinstance(data, dict):
            self._malformed(raw, "not a JSON object")
            return
        try:
            handle(data)
        except Exception as exc:  # a shape the handling cannot follow
            log.debug("%s: handling %r failed", self.vendor, data.get("type"), exc_info=True)
            self._malformed(raw, f"{data.get('type')!r} ({type(exc).__name__}: {exc})", what)

    def _report_turn_latency(self, *, speech_end_to_audio_ms: float | None = None,
                             stt_ms: float | None = None,
                             llm_first_token_ms: float | None = None,
                             tts_first_byte_ms: float | None = None) -> dict[str, Any]:
        """Record one answered user turn (figures in ms, None when the vendor does not
        expose one) in the session CDR and dispatch ``VoiceAIEvents.TurnLatency``.

        Returns:
            The record stored in ``SessionRecord.voice_ai_turns``.
        """
        self._turns += 1

        def ms(value: float | None) -> float | None:
            return None if value is None else round(float(value), 1)

        record: dict[str, Any] = {
            "vendor": self.vendor, "turn": self._turns,
            "speech_end_to_audio_ms": ms(speech_end_to_audio_ms), "stt_ms": ms(stt_ms),
            "llm_first_token_ms": ms(llm_first_token_ms),
            "tts_first_byte_ms": ms(tts_first_byte_ms),
        }
        session = self._owner_session()
        cdr = getattr(session, "record", None)
        turns = getattr(cdr, "voice_ai_turns", None)
        if isinstance(turns, list):
            turns.append(record)
        self.dispatch(VoiceAIEvents.TurnLatency, client=self, **record)
        return record

    def _owner_session(self) -> Any:
        return self._owner if self._owner is not None else current_session.get(None)

    # -- lifecycle --------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran or the vendor connection ended."""
        return self._closed

    async def close(self) -> None:
        """Close the vendor connection and drop every media route; idempotent."""
        self._closed = True
        self.stop_all_media()

    # -- media ------------------------------------------------------------------
    def choose_formats(self, source_format: AudioFormat | None,
                       ) -> tuple[AudioFormat, AudioFormat]:
        """The cheapest (input, output) formats for a source emitting ``source_format``.

        A G.711 law the vendor accepts both ways passes through untouched both ways;
        anything else gets the vendor's preferred PCM16 rates (one resample on each
        route edge), which may differ per direction (Gemini Live: 16 kHz in, 24 kHz out).
        """
        caps = self.capabilities
        if (
            source_format is not None
            and source_format.encoding.is_g711
            and source_format in caps.input_formats
            and source_format in caps.output_formats
        ):
            return source_format, source_format
        return caps.pcm_input, caps.pcm_output

    def choose_format(self, source_format: AudioFormat | None) -> AudioFormat:
        """The input format :meth:`choose_formats` picks (the same both ways for G.711)."""
        return self.choose_formats(source_format)[0]

    def set_formats(self, fmt: AudioFormat, output: AudioFormat | None = None) -> None:
        """Switch input to ``fmt`` and output to ``output`` (default ``fmt``), rebuild the
        routes and tell the vendor.

        Raises:
            ValueError: the vendor does not accept ``fmt`` in or ``output`` out.
        """
        out = output or fmt
        caps = self.capabilities
        if fmt not in caps.input_formats or out not in caps.output_formats:
            raise ValueError(f"{self.vendor} does not accept {fmt} in and {out} out")
        if fmt == self.input_format and out == self.output_format:
            return
        self.input_format = fmt
        self.output_format = out
        self._formats_changed()
        self._apply_formats(fmt)

    def _source_attached(self, source: MediaUnit) -> None:
        if self._closed:
            return
        self.set_formats(*self.choose_formats(source.output_format))

    def _apply_formats(self, fmt: AudioFormat) -> None:
        """Tell the vendor about a format switch (input ``fmt``; output in
        :attr:`output_format`); default: nothing."""

    def clear_media_buffer(self) -> None:
        """Drop the AI audio queued downstream (every sink's playout buffer)."""
        for sink in self.media_sinks:
            clear = getattr(sink, "clear_media_buffer", None)
            if callable(clear):
                try:
                    clear()
                except Exception:
                    log.exception("%s: clear_media_buffer on %r failed", self.vendor, sink)


#: Close code reported when the connection dropped without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE = 1006

#: Kinds of :class:`QueuedVoiceAIClient` send-queue entries.
AUDIO = "audio"
EVENT = "event"


def _resolve(fut: asyncio.Future[bool] | None, ok: bool) -> None:
    if fut is not None and not fut.done():
        fut.set_result(ok)


class QueuedVoiceAIClient(VoiceAIClient):
    """A :class:`VoiceAIClient` with the send queue every WebSocket connector shares.

    Caller audio routed in is batched to ``min_chunk_ms`` and queued (bounded by
    ``max_queued_audio_ms``, oldest dropped first, never blocking the 20 ms media
    clock); client events are queued behind it, keeping order, as
    ``(kind, payload, future)`` entries of :attr:`_out`. One sender task writes them,
    coalescing queued audio up to :attr:`coalesce_ms` when behind schedule, and
    resolves each event's ``asyncio.Future[bool]`` (True once written, False if the
    client closed first or the write failed). ``WebSocketClosed`` is dispatched once.

    Subclasses implement :meth:`_write_audio` and :meth:`_write_event` (one write to
    their transport), :meth:`_close_transport`, and a ``_read_loop``; hooks:
    :meth:`_sender_ready`, :meth:`_idle`, :meth:`_after_write`, :meth:`_reader_finished`.
    """

    #: Coalesce queued audio into one write of at most this many ms (0: never).
    coalesce_ms: int = 200
    #: Keep the first close code/reason when the connection is lost more than once.
    _keep_first_close = False

    def __init__(
        self,
        owner: ErrorSink | None = None,
        *,
        on_websocket_closed: Callable[[Event], Any] | None = None,
        max_queued_audio_ms: float = 2000.0,
        min_chunk_ms: int = 20,
    ) -> None:
        super().__init__(owner)
        self._on_websocket_closed = on_websocket_closed
        self._max_audio_entries = max(1, int(max_queued_audio_ms // max(min_chunk_ms, 1)))
        self._min_chunk_ms = min_chunk_ms
        self._out: deque[tuple[str, Any, asyncio.Future[bool] | None]] = deque()
        self._audio_entries = 0
        self._wakeup = asyncio.Event()
        self._pending = bytearray()
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._closed_dispatched = False
        #: ms of caller audio dropped because the send queue was full.
        self.dropped_audio_ms = 0.0
        #: WebSocket close code/reason once closed (RFC 6455 §7.4).
        self.close_code: int | None = None
        self.close_reason: str = ""

    @property
    def _log(self) -> logging.Logger:
        """The logger of the vendor module (``connectors.<vendor>.client``)."""
        return logging.getLogger(type(self).__module__)

    # -- transport (per vendor) ---------------------------------------------------
    async def _write_audio(self, data: bytes) -> None:
        """Write one (possibly coalesced) chunk of caller audio."""
        raise NotImplementedError

    async def _write_event(self, kind: str, payload: Any) -> None:
        """Write one queued client event."""
        raise NotImplementedError

    async def _close_transport(self, already: bool) -> None:
        """Close the vendor connection (``already``: the client was closed before)."""

    def _describe(self, kind: str, payload: Any) -> Any:
        """What a failed write is called in the log."""
        if kind == AUDIO:
            return "audio"
        return payload.get("type") if isinstance(payload, dict) else kind

    # -- lifecycle ----------------------------------------------------------------
    def _start_tasks(self, reader: Awaitable[None]) -> None:
        """Start the reader (``reader``) and the sender task."""
        self._reader = asyncio.ensure_future(reader)
        self._sender = asyncio.ensure_future(self._send_loop())

    async def close(self) -> None:
        """Close the WebSocket (code 1000) and drop every media route; idempotent.

        ``WebSocketClosed`` is dispatched (once) before this returns. The calls
        this client was connected to are left alone.
        """
        already = self._closed
        self._closed = True
        self.stop_all_media()
        self._cancel_sender()
        await self._close_transport(already)
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            try:
                await asyncio.wait_for(asyncio.shield(reader), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                reader.cancel()
        if not self._closed_dispatched:
            self._connection_lost(1000, "closed by client")

    def _cancel_sender(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        while self._out:
            _resolve(self._out.popleft()[2], False)
        self._audio_entries = 0
        self._pending.clear()

    def _close_log_detail(self) -> str:
        return ""

    def _connection_lost(self, code: int, reason: str) -> None:
        """The socket is gone: stop media, dispatch ``WebSocketClosed`` once."""
        self._closed = True
        if not self._keep_first_close or self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._cancel_sender()
        self.stop_all_media()
        if self._closed_dispatched:
            return
        self._closed_dispatched = True
        code, reason = self.close_code, self.close_reason
        self._log.info("%s: websocket closed%s code=%s reason=%r",
                       self.vendor, self._close_log_detail(), code, reason)
        ev = self.dispatch(
            VoiceAIEvents.WebSocketClosed,
            data={"code": code, "reason": reason},
            client=self,
            code=code,
            reason=reason,
        )
        cb = self._on_websocket_closed
        if cb is not None:
            self._call(cb, ev)

    # -- reader -------------------------------------------------------------------
    async def _guard_reader(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run the receive loop ``body``; when it ends, report the close once."""
        from websockets.exceptions import ConnectionClosed

        code, reason = ABNORMAL_CLOSURE, ""
        try:
            await body()
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                code, reason = exc.rcvd.code, exc.rcvd.reason
            elif exc.sent is not None and self._closed:
                code, reason = exc.sent.code, exc.sent.reason
        except asyncio.CancelledError:
            self._connection_lost(1000, "closed by client")
            raise
        except Exception as exc:
            self._log.exception("%s: reader failed", self.vendor)
            reason = type(exc).__name__
        self._connection_lost(code, reason)
        await self._reader_finished()

    async def _reader_finished(self) -> None:
        """After the reader reported the close (release SDK resources ...)."""

    # -- sender -------------------------------------------------------------------
    def _sender_ready(self) -> bool:
        """True when the head of the queue may be written now."""
        return bool(self._out)

    async def _idle(self) -> bool:
        """Wait for work (:attr:`_wakeup`); False stops the sender."""
        await self._wakeup.wait()
        return True

    def _after_write(self) -> None:
        """One entry was written."""

    async def _send_loop(self) -> None:
        from websockets.exceptions import ConnectionClosed

        while True:
            while not self._sender_ready():
                self._wakeup.clear()
                if not await self._idle():
                    return
            kind, payload, fut = self._out.popleft()
            try:
                if kind == AUDIO:
                    await self._write_audio(self._take_audio(payload))
                else:
                    await self._write_event(kind, payload)
            except asyncio.CancelledError:
                _resolve(fut, False)
                raise
            except ConnectionClosed:
                _resolve(fut, False)
                return
            except Exception:
                self._log.exception("%s: sending %s failed", self.vendor,
                                    self._describe(kind, payload))
                _resolve(fut, False)
                continue
            self._after_write()
            _resolve(fut, True)

    def _take_audio(self, first: bytes) -> bytes:
        """``first`` (just popped) plus, when behind schedule, the queued audio after
        it up to :attr:`coalesce_ms`."""
        self._audio_entries -= 1
        if self.coalesce_ms <= 0:
            return first
        chunks = [first]
        limit = self.input_format.frame_bytes(self.coalesce_ms) if self.input_format else 0
        size = len(first)
        while self._out and self._out[0][0] == AUDIO and size < limit:
            nxt = self._out.popleft()[1]
            self._audio_entries -= 1
            chunks.append(nxt)
            size += len(nxt)
        return b"".join(chunks)

    # -- queue --------------------------------------------------------------------
    def _on_media(self, frame: AudioFrame) -> None:
        if self._closed:
            return
        self._pending += frame.data
        fmt = self.input_format
        if fmt is not None and len(self._pending) >= fmt.frame_bytes(self._min_chunk_ms):
            self._flush_pending()

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        data = bytes(self._pending)
        self._pending.clear()
        if self._audio_entries >= self._max_audio_entries:
            self._drop_oldest_audio()
        self._out.append((AUDIO, data, None))
        self._audio_entries += 1
        self._wakeup.set()

    def _drop_oldest_audio(self) -> None:
        for i, (kind, payload, _) in enumerate(self._out):
            if kind == AUDIO:
                del self._out[i]
                self._audio_entries -= 1
                if self.input_format is not None:
                    if not self.dropped_audio_ms:
                        self._log.warning("%s: send queue full, dropping caller audio",
                                          self.vendor)
                    self.dropped_audio_ms += self.input_format.duration_ms(len(payload))
                return

    def _clear_queued_audio(self) -> None:
        """Drop caller audio queued and not yet sent."""
        self._pending.clear()
        kept = [e for e in self._out if e[0] != AUDIO]
        self._out.clear()
        self._out.extend(kept)
        self._audio_entries = 0

    def _queue(self, kind: str, payload: Any, what: Any) -> asyncio.Future[bool]:
        """Queue a client event after queued audio (``what`` names it in the log)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._closed:
            self._log.warning("%s: %s ignored, the client is closed", self.vendor, what)
            fut.set_result(False)
            return fut
        self._flush_pending()
        self._out.append((kind, payload, fut))
        self._wakeup.set()
        return fut


def first_played_sink(sinks: Sequence[Any]) -> Any | None:
    """The first of ``sinks`` that reports ``played_ms`` (a playout sink), or None."""
    for sink in sinks:
        if _number(getattr(sink, "played_ms", None)) is not None:
            return sink
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


__all__ = [
    "ABNORMAL_CLOSURE",
    "Capabilities",
    "ConnectOptions",
    "ConnectorError",
    "QueuedVoiceAIClient",
    "VoiceAIClient",
    "connect_with_retries",
    "first_played_sink",
]
