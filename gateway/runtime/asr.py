"""Speech recognition as a media unit (VoxEngine ``ASR``): ``call.send_media_to(asr)``.

The unit takes PCM16 at its provider's rate (16 kHz for PocketSphinx; the route edge
does the one resample from G.711), cuts the audio into utterances with the webrtcvad
turn detector, and recognises each utterance with a :class:`gateway.speech.ASRProvider`
stream off the event loop. Events follow VoxEngine's ``ASREvents`` (each with ``asr``):

* ``Started``: the unit is ready (dispatched once, right after creation);
* ``CaptureStarted``: speech began;
* ``InterimResult``: ``text`` so far (with ``interim_results=True``);
* ``SpeechCaptured``: speech ended; recognition of the utterance is under way;
* ``Result``: ``text``, ``confidence`` (0..1 or None), ``stt_ms``;
* ``ASRError``: ``error`` (the unit goes on with the next utterance);
* ``Stopped``: after :meth:`ASR.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from gateway.media.format import AudioFrame
from gateway.media.vad import TurnDetector
from gateway.runtime.context import current_session, spawn_owned
from gateway.runtime.events import ErrorSink, EventTarget
from gateway.runtime.media_unit import MediaUnit
from gateway.speech import ASRError, ASRProvider, ASRStream, create_asr

log = logging.getLogger(__name__)


class ASREvents:
    """VoxEngine ``ASREvents`` names (payloads: see the module docstring)."""

    Started = "ASREvents.Started"
    CaptureStarted = "ASREvents.CaptureStarted"
    InterimResult = "ASREvents.InterimResult"
    SpeechCaptured = "ASREvents.SpeechCaptured"
    Result = "ASREvents.Result"
    ASRError = "ASREvents.ASRError"
    Stopped = "ASREvents.Stopped"


class ASR(MediaUnit, EventTarget):
    """A speech recogniser fed by whatever unit sends media to it.

    Args:
        profile: "pocketsphinx" (offline default) or an ASR provider object.
        language: recognition language ("en-US").
        interim_results: dispatch ``InterimResult`` while the caller speaks.
        vad: :class:`gateway.media.vad.TurnDetector` options (``stop_ms`` ...).
        owner: the session (default: the one running now); the unit stops when it ends.

    Raises:
        ValueError: unknown profile.
    """

    def __init__(self, profile: str | ASRProvider = "pocketsphinx", *, language: str = "en-US",
                 interim_results: bool = False, vad: dict[str, Any] | None = None,
                 owner: ErrorSink | None = None) -> None:
        session = owner if owner is not None else current_session.get(None)
        MediaUnit.__init__(self)
        EventTarget.__init__(self, session)
        self.provider = create_asr(profile)
        self.input_format = self.provider.input_format
        self.language = language
        self.interim_results = bool(interim_results)
        self._vad = TurnDetector(self.input_format.sample_rate, **(vad or {}))
        self._stream: ASRStream | None = None
        self._active = True
        self._id = uuid.uuid4().hex
        self._session = session
        self._tasks: set[asyncio.Task[None]] = set()
        register = getattr(session, "register_unit", None)
        if callable(register):
            register(self)
        asyncio.get_running_loop().call_soon(self._started)

    def _started(self) -> None:
        if self._active:
            self.dispatch(ASREvents.Started, asr=self)

    def id(self) -> str:
        """The unit's id."""
        return self._id

    @property
    def active(self) -> bool:
        """True until :meth:`stop`."""
        return self._active

    def __repr__(self) -> str:
        return f"<ASR {self.provider.name} {'active' if self._active else 'stopped'}>"

    # -- media --------------------------------------------------------------------
    def _on_media(self, frame: AudioFrame) -> None:
        if not self._active:
            return
        for pcm, event in self._vad.feed(frame.data):
            if event is not None and event.kind == "start":
                self._capture_started(event.audio)
            elif self._stream is not None:
                self._stream.feed(pcm)
            if event is not None and event.kind == "end":
                self._speech_captured()

    def _capture_started(self, audio: bytes) -> None:
        try:
            interim = self._interim if self.interim_results else None
            self._stream = self.provider.open_stream(language=self.language,
                                                     on_interim=interim)
        except (ASRError, ValueError) as exc:
            self._stream = None
            self._error(str(exc))
            return
        self._stream.feed(audio)
        self.dispatch(ASREvents.CaptureStarted, asr=self)

    def _interim(self, text: str) -> None:
        if self._active:
            self.dispatch(ASREvents.InterimResult, asr=self, text=text)

    def _speech_captured(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self.dispatch(ASREvents.SpeechCaptured, asr=self)
        task = spawn_owned(self._session, self._result(stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _result(self, stream: ASRStream) -> None:
        try:
            result = await stream.finish()
        except ASRError as exc:
            self._error(str(exc))
            return
        if not self._active:
            return
        log_line = getattr(self._session, "log_line", None)
        if callable(log_line):
            log_line(f"asr {self.provider.name}: {result.text!r}")
        self.dispatch(ASREvents.Result, asr=self, text=result.text,
                      confidence=result.confidence, stt_ms=result.stt_ms)

    def _error(self, message: str) -> None:
        log_line = getattr(self._session, "log_line", None)
        if callable(log_line):
            log_line(f"asr {self.provider.name} error: {message}", logging.WARNING)
        self.dispatch(ASREvents.ASRError, asr=self, error=message)

    # -- lifecycle ------------------------------------------------------------------
    def stop(self) -> None:
        """Stop recognising (an utterance in progress is dropped); ``Stopped`` fires."""
        if not self._active:
            return
        self._active = False
        stream, self._stream = self._stream, None
        if stream is not None:
            asyncio.get_running_loop().create_task(stream.cancel())
        for task in list(self._tasks):
            task.cancel()
        self.stop_all_media()
        self.dispatch(ASREvents.Stopped, asr=self)

    async def close(self) -> None:
        """Stop without events (the session ends)."""
        self._active = False
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.stop_all_media()
