"""Playout buffer: bursty audio in, exactly one 20 ms frame out per clock tick.

Voice AI audio arrives faster than real time and in chunks of any size; the leg's
media clock calls :meth:`PlayoutBuffer.read_frame` every 20 ms (RFC 3551 §4.5 frame
size: 160 bytes of G.711 at 8000 Hz). The buffer knows how much real audio it handed
out (``played_ms``), which is what a Voice AI needs to truncate its reply at barge-in
(the Twilio/OpenAI Realtime ``conversation.item.truncate(audio_end_ms=...)`` pattern).
"""

from __future__ import annotations

import logging

from gateway.media.format import FRAME_MS, AudioFormat

__all__ = ["PlayoutBuffer"]

log = logging.getLogger(__name__)


class PlayoutBuffer:
    """FIFO of audio in one format, drained one 20 ms frame at a time.

    Args:
        fmt: format of everything written and read (e.g. PCMU_8K: 160 bytes a frame).
        max_ms: most audio held; writing more drops the oldest audio (counted in
            :attr:`dropped_ms`). Default 120 s, enough for a long AI answer.

    Not thread-safe; call it from the event loop only.
    """

    __slots__ = ("_buf", "_dropped_bytes", "_filler", "_frame", "_max_bytes", "_played_bytes",
                 "_rpos", "fmt", "frame_bytes")

    def __init__(self, fmt: AudioFormat, max_ms: int = 120_000) -> None:
        self.fmt = fmt
        #: Bytes in one 20 ms frame (160 for G.711 8 kHz, 960 for PCM16 24 kHz).
        self.frame_bytes = fmt.frame_bytes(FRAME_MS)
        self._filler = fmt.silence(FRAME_MS)
        self._frame = bytearray(self.frame_bytes)
        align = fmt.bytes_per_sample
        self._max_bytes = max(self.frame_bytes, fmt.frame_bytes(max_ms) // align * align)
        self._buf = bytearray()
        self._rpos = 0
        self._played_bytes = 0
        self._dropped_bytes = 0

    # -- writing -------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue ``data`` (bytes in :attr:`fmt`, any length) behind what is queued."""
        if not data:
            return
        self._buf += data
        excess = len(self._buf) - self._rpos - self._max_bytes
        if excess > 0:
            align = self.fmt.bytes_per_sample
            excess = min(-(-excess // align) * align, len(self._buf) - self._rpos)
            self._rpos += excess
            self._dropped_bytes += excess
            log.warning("playout buffer full (%d ms): dropped %.0f ms of the oldest audio",
                        self._max_bytes * 1000 // self._bytes_per_second(),
                        self.fmt.duration_ms(excess))
            self._compact()

    def clear(self) -> None:
        """Drop all queued audio at once (barge-in). ``played_ms`` is kept."""
        self._buf.clear()
        self._rpos = 0

    # -- reading -------------------------------------------------------
    def read_frame(self) -> bytes:
        """Return the next 20 ms frame (always :attr:`frame_bytes` long).

        Returns the filler silence when nothing is queued; a last, partial frame is
        padded with silence. Only real audio counts towards :attr:`played_ms`.
        """
        n = self.read_into(self._frame)
        if n == 0:
            return self._filler
        return bytes(self._frame)

    def read_into(self, out: bytearray | memoryview) -> int:
        """Fill ``out`` (exactly :attr:`frame_bytes` long) with the next frame, no allocation.

        Returns:
            How many bytes of real (queued) audio went into ``out``; the rest is silence.
        """
        fb = self.frame_bytes
        avail = len(self._buf) - self._rpos
        if avail <= 0:
            out[:fb] = self._filler
            return 0
        n = fb if avail >= fb else avail
        rpos = self._rpos
        out[:n] = memoryview(self._buf)[rpos:rpos + n]
        if n < fb:
            out[n:fb] = self._filler[n:]
        self._rpos = rpos + n
        self._played_bytes += n
        if self._rpos == len(self._buf):
            self._buf.clear()
            self._rpos = 0
        elif self._rpos >= 65536 and self._rpos * 2 >= len(self._buf):
            self._compact()
        return n

    def _compact(self) -> None:
        del self._buf[: self._rpos]
        self._rpos = 0

    def _bytes_per_second(self) -> int:
        return self.fmt.sample_rate * self.fmt.bytes_per_sample

    # -- state ---------------------------------------------------------
    @property
    def queued_ms(self) -> float:
        """Milliseconds of audio waiting to be read."""
        return self.fmt.duration_ms(len(self._buf) - self._rpos)

    @property
    def played_ms(self) -> float:
        """Milliseconds of real (non-filler) audio read so far; monotonic, kept by clear()."""
        return self.fmt.duration_ms(self._played_bytes)

    @property
    def dropped_ms(self) -> float:
        """Milliseconds of audio dropped because the buffer was full."""
        return self.fmt.duration_ms(self._dropped_bytes)

    @property
    def is_playing(self) -> bool:
        """True while queued audio remains."""
        return len(self._buf) > self._rpos
