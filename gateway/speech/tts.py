"""Speech synthesis providers behind one streaming interface.

A provider turns text into PCM16 mono chunks in its ``output_format``, yielded as
soon as they are synthesised (progressive playback starts before synthesis ends).
Synthesis never runs on the event loop: espeak-ng runs as a child of a small spawner
process (:mod:`gateway.speech.spawner`; forking the gateway itself would stall its
loop), its output read asynchronously, and the number of concurrent synthesisers is
bounded.

The offline default is espeak-ng (``apt install espeak-ng``), whose ``--stdout``
WAV is 22050 Hz mono PCM16 for its built-in voices.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
from collections.abc import AsyncIterator
from typing import Protocol

from gateway.media.format import AudioFormat, Encoding
from gateway.speech.spawner import JobFailed, SpawnError, shared_spawner

#: espeak-ng's built-in voices speak PCM16 mono at 22050 Hz.
ESPEAK_FORMAT = AudioFormat(Encoding.PCM16, 22050)
#: Longest text one synthesis takes (characters); longer input is refused.
MAX_TEXT_CHARS = 5000


class TTSError(RuntimeError):
    """Synthesis failed (binary missing, bad voice, bad output); the message says why."""


class TTSProvider(Protocol):
    """A speech synthesiser: ``name`` for logs and the format of what it yields."""

    name: str
    output_format: AudioFormat

    def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        """PCM16 LE mono chunks at ``output_format``'s rate, as they are produced.

        Raises:
            TTSError: synthesis failed (raised from the iterator).
        """


def _wav_header(head: bytes) -> tuple[int, int, int, int]:
    """(channels, rate, bits, data offset) of a streamed RIFF/WAVE header.

    Raises:
        TTSError: not a PCM WAV stream.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise TTSError("espeak-ng did not write a WAV stream")
    pos = 12
    fmt: tuple[int, int, int] | None = None
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", head[pos + 8:pos + 16])
            bits = struct.unpack("<H", head[pos + 22:pos + 24])[0]
            if tag != 1:
                raise TTSError(f"espeak-ng wrote WAV format tag {tag}, not PCM")
            fmt = (channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                break
            return (*fmt, pos + 8)
        pos += 8 + size
    raise TTSError("espeak-ng's WAV header is incomplete")


class EspeakTTS:
    """Offline synthesis with the espeak-ng command (one short-lived process per text).

    Args:
        voice: default espeak-ng voice ("en-us", "en-gb", "de" ...).
        speed: words per minute (espeak-ng ``-s``; default 175).
        max_concurrent: synthesisers running at once (shared by every caller of this
            instance); default one per core.
        binary: the espeak-ng executable.
    """

    name = "espeak"
    output_format = ESPEAK_FORMAT

    def __init__(self, voice: str = "en-us", *, speed: int | None = None,
                 max_concurrent: int | None = None, binary: str = "espeak-ng") -> None:
        self.voice = voice
        self.speed = speed
        self.binary = binary
        self._limit = max(1, int(max_concurrent or os.cpu_count() or 1))
        self._sem: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._limit)
        return self._sem

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        """Yield PCM16 22050 Hz mono chunks of ``text`` spoken, as espeak-ng writes them.

        Raises:
            TTSError: espeak-ng is missing, failed, or wrote something unexpected.
            ValueError: ``text`` is longer than :data:`MAX_TEXT_CHARS`.
        """
        text = " ".join(str(text).split())
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        if not text:
            return
        exe = shutil.which(self.binary)
        if exe is None:
            raise TTSError(f"{self.binary} is not installed (apt install espeak-ng)")
        args = [exe, "--stdout", "-v", voice or self.voice]
        if self.speed:
            args += ["-s", str(int(self.speed))]
        args += ["--", text]
        async with self._semaphore():
            try:
                async with contextlib.aclosing(shared_spawner().run(args)) as out:
                    async for chunk in self._pcm(out):
                        yield chunk
            except JobFailed as exc:
                raise TTSError(f"espeak-ng {exc}") from exc
            except SpawnError as exc:
                raise TTSError(f"espeak-ng could not run: {exc}") from exc

    async def _pcm(self, out: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The PCM payload of espeak-ng's streamed WAV, in whole samples."""
        head = b""
        offset = -1
        async for chunk in out:
            head += chunk
            if len(head) < 44:
                continue
            try:
                channels, rate, bits, offset = _wav_header(head)
            except TTSError:
                if len(head) < 512:
                    continue
                raise
            break
        if offset < 0:
            if head:
                _wav_header(head)  # raises on a short or broken header
            return
        if (channels, rate, bits) != (1, self.output_format.sample_rate, 16):
            raise TTSError(f"espeak-ng wrote {channels} ch {rate} Hz {bits}-bit audio; "
                           f"expected mono {self.output_format.sample_rate} Hz PCM16")
        carry = head[offset:]
        if len(carry) >= 2:
            cut = len(carry) - len(carry) % 2
            yield carry[:cut]
            carry = carry[cut:]
        async for chunk in out:
            carry += chunk
            if len(carry) >= 2:
                cut = len(carry) - len(carry) % 2
                yield carry[:cut]
                carry = carry[cut:]
