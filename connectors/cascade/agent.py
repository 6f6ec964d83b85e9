"""The cascade voice agent: STT -> LLM -> TTS in the gateway process.

:class:`CascadeAgent` is a Voice AI media unit like every vendor connector
(``VoxEngine.send_media_between(call, agent)``), built from three parts:

* **turn detection** (:class:`gateway.media.vad.TurnDetector`, webrtcvad) on the
  caller's audio, PCM16 at the STT's rate (16 kHz for PocketSphinx; the route edge
  does the one resample from G.711);
* **STT** (:class:`gateway.speech.ASRProvider`): one stream per caller turn, fed
  while the caller speaks, finished when the stop window closes;
* **LLM** (:class:`connectors.cascade.llm.LLM`): any OpenAI-compatible streaming
  Chat Completions endpoint, or the offline responder; text is spoken sentence by
  sentence as it streams; tool calls surface as ``VoiceAIEvents.ToolCall`` and
  are answered with :meth:`CascadeAgent.send_tool_result`;
* **TTS** (:class:`gateway.speech.TTSProvider`): each sentence is synthesised off
  the loop and its audio emitted as it is produced (progressive playback).

Barge-in: the caller frame that completes the VAD start window clears every
sink's playout buffer (``clear_media_buffer``) and cancels the response in the
same call, so the caller hears at most the 20 ms frame already on the wire.

Per-turn latency (``VoiceAIEvents.TurnLatency``, also in the session CDR):
``speech_end_to_audio_ms`` from the moment the stop window closed to the first
synthesised byte emitted, ``stt_ms`` (final recognition pass), ``llm_first_token_ms``
and ``tts_first_byte_ms`` (first sentence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

from connectors.base import Capabilities, ConnectorError, VoiceAIClient, VoiceAIEvents
from connectors.cascade.llm import LLM, chat_tools
from gateway.media.format import AudioFormat, AudioFrame
from gateway.media.vad import TurnDetector, TurnEvent
from gateway.runtime.context import spawn_owned
from gateway.runtime.events import ErrorSink
from gateway.speech.asr import ASRError, ASRProvider, ASRStream
from gateway.speech.tts import TTSError, TTSProvider

log = logging.getLogger(__name__)

#: A sentence ends at . ! ? (or a line break) followed by space.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
#: A clause boundary where a long first sentence may be cut to speak sooner.
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
#: Characters before a clause boundary is good enough to start speaking.
FIRST_CLAUSE_CHARS = 40


class CascadeEvents:
    """Events of :class:`CascadeAgent` (besides ``VoiceAIEvents``), all with ``client``.

    ``SpeechStarted``: the caller began a turn; ``barge_in`` (bool) says whether the
    agent's answer was cut. ``SpeechStopped``: the turn ended; ``speech_ms``.
    ``InterimTranscript``: ``text`` so far. ``Transcript``: ``text``, ``confidence``
    (0..1 or None), ``stt_ms``. ``ResponseDone``: ``text`` the agent said in full,
    ``interrupted`` (bool).
    """

    SpeechStarted = "Cascade.SpeechStarted"
    SpeechStopped = "Cascade.SpeechStopped"
    InterimTranscript = "Cascade.InterimTranscript"
    Transcript = "Cascade.Transcript"
    ResponseDone = "Cascade.ResponseDone"
    ToolCall = VoiceAIEvents.ToolCall
    TurnLatency = VoiceAIEvents.TurnLatency
    Error = VoiceAIEvents.Error
    WebSocketClosed = VoiceAIEvents.WebSocketClosed


def cascade_capabilities(stt_format: AudioFormat, tts_format: AudioFormat) -> Capabilities:
    """A cascade's capabilities: PCM16 in at the STT's rate, out at the TTS's rate."""
    return Capabilities(
        input_formats=(stt_format,), output_formats=(tts_format,), server_vad=True,
        barge_in=True, truncation=False, function_calling=True, transcripts=True)


class _Turn:
    """Timing of one answer (for ``TurnLatency``)."""

    __slots__ = ("llm_first", "llm_start", "reported", "speech_end", "stt_ms", "tts_first",
                 "tts_start")

    def __init__(self, speech_end: float | None, stt_ms: float | None) -> None:
        self.speech_end = speech_end
        self.stt_ms = stt_ms
        self.llm_start: float | None = None
        self.llm_first: float | None = None
        self.tts_start: float | None = None
        self.tts_first: float | None = None
        self.reported = speech_end is None  # a greeting has no user turn to time


class CascadeAgent(VoiceAIClient):
    """An STT -> LLM -> TTS voice agent as a media unit and event target.

    Create it with ``Cascade.create_agent(...)`` (:func:`connectors.cascade.create_agent`).

    Args:
        stt: the recogniser (PocketSphinx by default).
        llm: an OpenAI-compatible LLM client or the offline responder.
        tts: the synthesiser (espeak-ng by default).
        instructions: the system prompt.
        tools: tool definitions (Chat Completions, Realtime or bare ``{name,
            description, parameters}`` shape).
        greeting: spoken when the first caller audio source attaches; None lets the
            offline responder greet (other LLMs wait for the caller); "" greets never.
        speak_greeting_with_llm: ask the LLM for the greeting (the responder's default).
        voice: TTS voice.
        language: STT language.
        vad: :class:`~gateway.media.vad.TurnDetector` options (``start_ms``,
            ``stop_ms``, ``aggressiveness`` ...).
        barge_in: cut the answer when the caller speaks.
        tool_timeout_s: a tool call not answered in time gets an error result.
        max_tool_rounds: LLM rounds after tool results in one turn.
        owner: the owning session (default: the one running now).
    """

    vendor = "cascade"

    def __init__(self, *, stt: ASRProvider, llm: LLM, tts: TTSProvider, instructions: str = "",
                 tools: list[dict[str, Any]] | None = None, greeting: str | None = None,
                 speak_greeting_with_llm: bool = False, voice: str | None = None,
                 language: str = "en-US", vad: dict[str, Any] | None = None,
                 barge_in: bool = True, tool_timeout_s: float = 30.0,
                 max_tool_rounds: int = 3, owner: ErrorSink | None = None) -> None:
        self.capabilities = cascade_capabilities(stt.input_format, tts.output_format)
        super().__init__(owner)
        self.stt, self.llm, self.tts = stt, llm, tts
        self.voice = voice
        self.language = language
        self.barge_in = barge_in
        self.tool_timeout_s = tool_timeout_s
        self.max_tool_rounds = max_tool_rounds
        self.tools = chat_tools(tools or [])
        self.greeting = greeting
        self.speak_greeting_with_llm = speak_greeting_with_llm
        #: The conversation so far, in Chat Completions' message shape.
        self.messages: list[dict[str, Any]] = (
            [{"role": "system", "content": instructions}] if instructions else [])
        self._vad = TurnDetector(stt.input_format.sample_rate, **(vad or {}))
        self._stream: ASRStream | None = None
        self._response: asyncio.Task[None] | None = None
        self._tool_results: dict[str, asyncio.Future[Any]] = {}
        self._greeted = False
        self._emitting = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<CascadeAgent stt={self.stt.name} llm={self.llm.name} tts={self.tts.name} "
                f"{state}>")

    # -- session log ------------------------------------------------------------
    def _log(self, text: str, level: int = logging.INFO) -> None:
        session = self._owner_session()
        log_line = getattr(session, "log_line", None)
        if callable(log_line):
            log_line(f"cascade: {text}", level)
        else:
            log.log(level, "cascade: %s", text)

    # -- media in ---------------------------------------------------------------
    def _source_attached(self, source: Any) -> None:
        super()._source_attached(source)
        if self._closed or self._greeted:
            return
        self._greeted = True
        if self.greeting:
            self._start_response(_Turn(None, None), say=self.greeting)
        elif self.greeting is None and self.speak_greeting_with_llm:
            self._start_response(_Turn(None, None))

    def _on_media(self, frame: AudioFrame) -> None:
        if self._closed:
            return
        for pcm, event in self._vad.feed(frame.data):
            if event is not None and event.kind == "start":
                self._speech_started(event)
            elif self._stream is not None:
                self._stream.feed(pcm)
            if event is not None and event.kind == "end":
                self._speech_stopped(event)

    def responding(self) -> bool:
        """True while an answer is being produced or is still queued for playout."""
        if self._response is not None and not self._response.done():
            return True
        return any((getattr(s, "queued_ms", 0) or 0) > 0 for s in self.media_sinks)

    def _speech_started(self, event: TurnEvent) -> None:
        cut = self.barge_in and self.responding()
        if cut:
            self.interrupt()
        self.dispatch(CascadeEvents.SpeechStarted, barge_in=cut, client=self)
        if self._stream is not None:
            asyncio.get_running_loop().create_task(self._stream.cancel())
        try:
            self._stream = self.stt.open_stream(language=self.language,
                                                on_interim=self._interim)
        except ASRError as exc:
            self._stream = None
            self._dispatch_error(f"STT {self.stt.name}: {exc}")
            return
        self._stream.feed(event.audio)

    def _interim(self, text: str) -> None:
        if not self._closed:
            self.dispatch(CascadeEvents.InterimTranscript, text=text, client=self)

    def _speech_stopped(self, event: TurnEvent) -> None:
        speech_end = time.perf_counter()
        stream, self._stream = self._stream, None
        self.dispatch(CascadeEvents.SpeechStopped, speech_ms=event.speech_ms, client=self)
        if stream is None:
            return
        if self._response is not None and not self._response.done():
            self._response.cancel()
        self._response = self._spawn(self._user_turn(stream, speech_end))

    def interrupt(self) -> None:
        """Cut the current answer now: clear the sinks' playout, cancel synthesis."""
        self.clear_media_buffer()
        if self._response is not None and not self._response.done():
            self._response.cancel()
        for fut in self._tool_results.values():
            fut.cancel()
        self._tool_results.clear()

    # -- turns ------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        return spawn_owned(self._owner_session(), coro)

    async def _user_turn(self, stream: ASRStream, speech_end: float) -> None:
        try:
            result = await stream.finish()
        except ASRError as exc:
            self._dispatch_error(f"STT {self.stt.name}: {exc}")
            return
        conf = "" if result.confidence is None else f", confidence {result.confidence:.2f}"
        self._log(f"caller said {result.text!r} ({result.audio_ms:.0f} ms of audio{conf}, "
                  f"stt {result.stt_ms:.0f} ms)")
        self.dispatch(CascadeEvents.Transcript, text=result.text, confidence=result.confidence,
                      stt_ms=result.stt_ms, client=self)
        if not result.text.strip() or self._closed:
            return
        self.messages.append({"role": "user", "content": result.text})
        await self._answer(_Turn(speech_end, result.stt_ms))

    def _start_response(self, turn: _Turn, say: str | None = None) -> None:
        if self._response is not None and not self._response.done():
            self._response.cancel()
        self._response = self._spawn(self._answer(turn, say=say))

    async def _answer(self, turn: _Turn, say: str | None = None) -> None:
        spoken: list[str] = []
        interrupted = True
        try:
            if say is not None:
                self.messages.append({"role": "assistant", "content": say})
                spoken.append(say)
                await self._speak(say, turn)
            else:
                for _round in range(self.max_tool_rounds + 1):
                    text, calls = await self._llm_round(turn, spoken)
                    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
                    if calls:
                        msg["tool_calls"] = [
                            {"id": c.id, "type": "function",
                             "function": {"name": c.name, "arguments": c.arguments}}
                            for c in calls]
                    self.messages.append(msg)
                    if not calls:
                        break
                    await self._run_tools(calls)
            interrupted = False
        except ConnectorError as exc:
            self._dispatch_error(f"LLM {self.llm.name}: {exc}")
        except TTSError as exc:
            self._dispatch_error(f"TTS {self.tts.name}: {exc}")
        finally:
            if spoken:
                self._log(f"agent said {' '.join(spoken)!r}"
                          + (" (interrupted)" if interrupted else ""))
                self.dispatch(CascadeEvents.ResponseDone, text=" ".join(spoken),
                              interrupted=interrupted, client=self)

    async def _llm_round(self, turn: _Turn, spoken: list[str]) -> tuple[str, tuple[Any, ...]]:
        """One LLM request: speak its text sentence by sentence; return (text, tool calls)."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.ensure_future(self._speaker(queue, turn))
        text, pending, calls = "", "", ()
        turn.llm_start = time.perf_counter()
        try:
            async with contextlib.aclosing(self.llm.stream(list(self.messages),
                                                           self.tools)) as deltas:
                async for delta in deltas:
                    if turn.llm_first is None and (delta.text or delta.tool_calls):
                        turn.llm_first = time.perf_counter()
                    if delta.tool_calls:
                        calls = tuple(delta.tool_calls)
                    if delta.text:
                        text += delta.text
                        pending += delta.text
                        sentences, pending = _split(pending, first=not spoken)
                        for sentence in sentences:
                            spoken.append(sentence)
                            queue.put_nowait(sentence)
            if pending.strip():
                spoken.append(pending.strip())
                queue.put_nowait(pending.strip())
            queue.put_nowait(None)
            await speaker
        finally:
            if not speaker.done():
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await speaker
        return text.strip(), calls

    async def _speaker(self, queue: asyncio.Queue[str | None], turn: _Turn) -> None:
        while (sentence := await queue.get()) is not None:
            await self._speak(sentence, turn)

    async def _speak(self, text: str, turn: _Turn) -> None:
        """Synthesise ``text`` and emit its audio as it is produced."""
        if turn.tts_start is None:
            turn.tts_start = time.perf_counter()
        async for chunk in self.tts.synthesize(text, voice=self.voice):
            if self._closed:
                return
            if turn.tts_first is None:
                turn.tts_first = time.perf_counter()
            if not turn.reported:
                self._report(turn)
            self._emit(AudioFrame(chunk, self.tts.output_format))

    def _report(self, turn: _Turn) -> None:
        turn.reported = True
        now = time.perf_counter()

        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else (b - a) * 1000

        rec = self._report_turn_latency(
            speech_end_to_audio_ms=ms(turn.speech_end, now), stt_ms=turn.stt_ms,
            llm_first_token_ms=ms(turn.llm_start, turn.llm_first),
            tts_first_byte_ms=ms(turn.tts_start, turn.tts_first))
        self._log("turn {turn}: speech end -> first audio {speech_end_to_audio_ms} ms "
                  "(stt {stt_ms}, llm first token {llm_first_token_ms}, "
                  "tts first byte {tts_first_byte_ms})".format(**rec), logging.DEBUG)

    async def _run_tools(self, calls: tuple[Any, ...]) -> None:
        loop = asyncio.get_running_loop()
        futures = {}
        for call in calls:
            futures[call.id] = self._tool_results[call.id] = loop.create_future()
            self._dispatch_tool_call(call.name, call.id, call.arguments,
                                     {"type": "tool_call", "id": call.id, "name": call.name,
                                      "arguments": call.arguments})
        for call in calls:
            try:
                result = await asyncio.wait_for(futures[call.id], self.tool_timeout_s)
            except TimeoutError:
                result = {"error": f"tool {call.name} did not answer within "
                                   f"{self.tool_timeout_s:g} s"}
                self._log(f"tool {call.name} ({call.id}) timed out", logging.WARNING)
            finally:
                self._tool_results.pop(call.id, None)
            content = result if isinstance(result, str) else _json(result)
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": content})

    def send_tool_result(self, call_id: str, result: Any) -> asyncio.Future[bool]:
        """Answer a ``VoiceAIEvents.ToolCall``: the LLM continues with ``result``.

        Returns:
            A future resolving True when the call was pending, False otherwise.
        """
        fut = asyncio.get_running_loop().create_future()
        pending = self._tool_results.get(str(call_id))
        ok = pending is not None and not pending.done()
        if ok:
            pending.set_result(result)
        else:
            self._log(f"tool result for unknown call {call_id!r} ignored", logging.WARNING)
        fut.set_result(ok)
        return fut

    def say(self, text: str) -> None:
        """Speak ``text`` now (replacing any answer in progress) and add it to the
        conversation as the assistant's."""
        self.interrupt()
        self._start_response(_Turn(None, None), say=str(text))

    def send_text(self, text: str) -> None:
        """Add a user message as text and answer it (no STT)."""
        self.interrupt()
        self.messages.append({"role": "user", "content": str(text)})
        self._start_response(_Turn(None, None))

    # -- lifecycle ----------------------------------------------------------------
    async def close(self) -> None:
        """Stop listening and speaking; dispatch ``WebSocketClosed`` (1000) once."""
        if self._closed:
            return
        self.interrupt()
        stream, self._stream = self._stream, None
        await super().close()
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.cancel()
        self.dispatch(VoiceAIEvents.WebSocketClosed, code=1000, reason="closed by client",
                      client=self)


def _split(buffer: str, first: bool) -> tuple[list[str], str]:
    """Complete sentences in ``buffer`` and the rest; the very first sentence may be cut
    at a clause boundary once it is long enough, to start speaking sooner."""
    parts = _SENTENCE_END.split(buffer)
    done = [p.strip() for p in parts[:-1] if p.strip()]
    rest = parts[-1]
    if first and not done and len(rest) >= FIRST_CLAUSE_CHARS:
        clauses = _CLAUSE_END.split(rest)
        if len(clauses) > 1:
            done = [" ".join(clauses[:-1]).strip()]
            rest = clauses[-1]
    return done, rest


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return json.dumps(str(value))
