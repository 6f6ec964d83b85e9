"""Audio formats and frames: the unit of exchange of the media plane.

A frame carries raw audio in one :class:`AudioFormat`. Telephony frames are 20 ms
(RFC 3551 §4.5: G.711 at 8000 Hz, 160 samples = 160 bytes per 20 ms); frames
from a Voice AI may have any length and are re-chunked by the playout buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FRAME_MS = 20


class Encoding(str, Enum):
    """Sample encodings the media plane knows.

    ``PCM16`` is signed 16-bit little-endian linear PCM; ``PCMU``/``PCMA`` are
    ITU-T G.711 μ-law / A-law, one byte per sample.
    """

    PCM16 = "pcm16"
    PCMU = "pcmu"
    PCMA = "pcma"

    @property
    def is_g711(self) -> bool:
        return self is not Encoding.PCM16


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Encoding, sample rate (Hz) and channel count of a stream.

    Example: ``AudioFormat(Encoding.PCMU, 8000)`` is G.711 μ-law, 160 bytes per 20 ms.
    """

    encoding: Encoding
    sample_rate: int
    channels: int = 1

    @property
    def bytes_per_sample(self) -> int:
        """1 for G.711, 2 for PCM16 (per channel)."""
        return (1 if self.encoding.is_g711 else 2) * self.channels

    def frame_samples(self, ms: int = FRAME_MS) -> int:
        """Samples per channel in ``ms`` milliseconds (160 for 20 ms at 8000 Hz)."""
        return self.sample_rate * ms // 1000

    def frame_bytes(self, ms: int = FRAME_MS) -> int:
        """Bytes in ``ms`` milliseconds (160 for 20 ms PCMU, 960 for 20 ms PCM16 at 24 kHz)."""
        return self.frame_samples(ms) * self.bytes_per_sample

    def duration_ms(self, nbytes: int) -> float:
        """Milliseconds of audio in ``nbytes`` bytes of this format."""
        return nbytes * 1000.0 / (self.sample_rate * self.bytes_per_sample)

    def silence(self, ms: int = FRAME_MS) -> bytes:
        """``ms`` of digital silence: 0xFF for μ-law, 0xD5 for A-law, zeros for PCM16."""
        n = self.frame_bytes(ms)
        if self.encoding is Encoding.PCMU:
            return b"\xff" * n
        if self.encoding is Encoding.PCMA:
            return b"\xd5" * n
        return bytes(n)

    def __str__(self) -> str:
        return f"{self.encoding.value}/{self.sample_rate}" + (
            f"/{self.channels}" if self.channels != 1 else ""
        )


PCMU_8K = AudioFormat(Encoding.PCMU, 8000)
PCMA_8K = AudioFormat(Encoding.PCMA, 8000)
PCM16_8K = AudioFormat(Encoding.PCM16, 8000)
PCM16_16K = AudioFormat(Encoding.PCM16, 16000)
PCM16_24K = AudioFormat(Encoding.PCM16, 24000)
PCM16_48K = AudioFormat(Encoding.PCM16, 48000)


@dataclass(slots=True)
class AudioFrame:
    """A chunk of audio in one format; 20 ms on telephony paths.

    Attributes:
        data: the raw samples (bytes in ``format``).
        format: the :class:`AudioFormat` of ``data``.
    """

    data: bytes
    format: AudioFormat

    @property
    def duration_ms(self) -> float:
        """Length of this frame in milliseconds."""
        return self.format.duration_ms(len(self.data))
