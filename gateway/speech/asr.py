"""Speech recognition providers behind one streaming interface.

A provider opens one :class:`ASRStream` per utterance: feed it PCM16 mono at
``input_format``'s rate while the caller speaks, then ``await finish()`` for the
:class:`ASRResult`. Feeding never blocks the event loop; recognition runs in
worker processes (:mod:`gateway.speech.workers`).

The offline default is PocketSphinx 5 with the en-US model its wheel ships
(16 kHz acoustic model: telephone audio is resampled 8 -> 16 kHz on the route edge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.media.format import AudioFormat, Encoding
from gateway.speech.workers import SpeechWorkerError, SphinxPool

log = logging.getLogger(__name__)

#: What the bundled PocketSphinx en-US model takes: PCM16 mono 16000 Hz.
SPHINX_FORMAT = AudioFormat(Encoding.PCM16, 16000)


class ASRError(RuntimeError):
    """Recognition failed (worker died, provider refused); the message says why."""


@dataclass(frozen=True, slots=True)
class ASRResult:
    """One recognised utterance.

    Attributes:
        text: the transcript ("" when nothing was recognised).
        confidence: 0..1 when the provider reports it, else None.
        stt_ms: time from :meth:`ASRStream.finish` to this result (ms): what
            recognition added after the caller stopped speaking.
        audio_ms: length of the audio fed (ms).
    """

    text: str
    confidence: float | None
    stt_ms: float
    audio_ms: float


class ASRStream(Protocol):
    """One utterance being recognised."""

    def feed(self, pcm: bytes) -> None:
        """Add PCM16 LE mono audio at the provider's ``input_format`` rate; never blocks."""

    async def finish(self) -> ASRResult:
        """No more audio: the final result.

        Raises:
            ASRError: recognition failed.
        """

    async def cancel(self) -> None:
        """Drop the utterance (barge-in of a barge-in, call ended)."""


class ASRProvider(Protocol):
    """A speech recogniser: ``name`` for logs, the audio it takes, and streams."""

    name: str
    input_format: AudioFormat

    def open_stream(self, *, language: str = "en-US",
                    on_interim: Callable[[str], Any] | None = None) -> ASRStream:
        """Start recognising one utterance (returns at once; never blocks)."""


class _SphinxStream:
    """An utterance on a pooled worker; audio fed before a worker is free is buffered."""

    def __init__(self, pool: SphinxPool, on_interim: Callable[[str], Any] | None,
                 interim_every_ms: float) -> None:
        self._pool = pool
        self._pending: list[bytes] = []
        self._fed_bytes = 0
        self._worker: Any = None
        self._error: BaseException | None = None
        self._release = asyncio.get_running_loop().create_future()
        self._got_worker = asyncio.Event()
        self._on_interim = on_interim
        self._interim_every = interim_every_ms * 32  # bytes of 16 kHz PCM16
        self._since_interim = 0
        self._interim_task: asyncio.Task[None] | None = None
        self._last_interim = ""
        self._task = asyncio.get_running_loop().create_task(self._hold())

    async def _hold(self) -> None:
        try:
            async with self._pool.acquire() as worker:
                worker.start_utterance()
                for chunk in self._pending:
                    worker.feed(chunk)
                self._pending.clear()
                self._worker = worker
                self._got_worker.set()
                await self._release
        except BaseException as exc:
            self._error = exc
            self._got_worker.set()
            if isinstance(exc, asyncio.CancelledError):
                raise

    def feed(self, pcm: bytes) -> None:
        if not pcm or self._error is not None:
            return
        self._fed_bytes += len(pcm)
        if self._worker is None:
            self._pending.append(bytes(pcm))
            return
        try:
            self._worker.feed(pcm)
        except SpeechWorkerError as exc:
            self._error = exc
            return
        if self._on_interim is not None:
            self._since_interim += len(pcm)
            if self._since_interim >= self._interim_every and (
                    self._interim_task is None or self._interim_task.done()):
                self._since_interim = 0
                self._interim_task = asyncio.get_running_loop().create_task(self._interim())

    async def _interim(self) -> None:
        while True:
            try:
                text = await self._worker.partial()
            except Exception:
                return
            if text and text != self._last_interim and self._on_interim is not None:
                self._last_interim = text
                self._on_interim(text)
            # more audio arrived while this answer was on its way: ask again
            if self._since_interim < self._interim_every or self._release.done():
                return
            self._since_interim = 0

    async def finish(self) -> ASRResult:
        t0 = time.perf_counter()
        audio_ms = self._fed_bytes / 32
        try:
            await self._got_worker.wait()
            if self._error is not None:
                raise ASRError(f"PocketSphinx: {self._error}") from self._error
            if self._interim_task is not None:
                with contextlib.suppress(Exception):
                    await self._interim_task
            try:
                res = await self._worker.end_utterance()
            except SpeechWorkerError as exc:
                raise ASRError(f"PocketSphinx: {exc}") from exc
        finally:
            if not self._release.done():
                self._release.set_result(None)
        conf = res.get("confidence")
        return ASRResult(text=str(res.get("text") or ""),
                         confidence=None if conf is None else float(conf),
                         stt_ms=(time.perf_counter() - t0) * 1000, audio_ms=audio_ms)

    async def cancel(self) -> None:
        if self._worker is not None and not self._release.done():
            with contextlib.suppress(Exception):
                await self._worker.end_utterance()
        if not self._release.done():
            self._release.set_result(None)
        if self._worker is None:
            self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


class PocketsphinxASR:
    """Offline recognition with PocketSphinx (en-US model from its wheel).

    Args:
        pool: the shared worker pool (default: this loop's :func:`gateway.speech.speech_pool`).
        interim_every_ms: how often interim hypotheses are asked for while
            ``on_interim`` is given.
    """

    name = "pocketsphinx"
    input_format = SPHINX_FORMAT

    def __init__(self, pool: SphinxPool | None = None, *, interim_every_ms: float = 500) -> None:
        self._pool = pool
        self.interim_every_ms = interim_every_ms

    @property
    def pool(self) -> SphinxPool:
        if self._pool is None:
            from gateway.speech import speech_pool

            self._pool = speech_pool()
        return self._pool

    def open_stream(self, *, language: str = "en-US",
                    on_interim: Callable[[str], Any] | None = None) -> ASRStream:
        """Start an utterance (PCM16 16 kHz in).

        Raises:
            ASRError: ``language`` is not English (the only bundled model).
        """
        if not language.lower().startswith("en"):
            raise ASRError(f"PocketSphinx ships only an en-US model, not {language!r}")
        return _SphinxStream(self.pool, on_interim, self.interim_every_ms)
