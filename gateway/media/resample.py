"""Streaming sample-rate conversion of PCM16 mono audio.

Built on PyAV's ``av.AudioResampler`` (FFmpeg libswresample, windowed-sinc with an
anti-alias low-pass), format ``s16``, layout ``mono``. The converter is stateful: feed
consecutive chunks of one stream and the output is continuous, with no clicks at chunk
boundaries.

Latency: libswresample holds back the filter's half length, about 2 ms (16 samples at
8 kHz out, 48 at 24 kHz out). The first chunk that yields output is prefixed with that
many zero samples, so from then on the output length tracks the input exactly
(``out_samples ~= in_samples * dst_rate / src_rate``, +-1 sample for non-integer ratios):
50 frames of 20 ms at 8 kHz give 1 s at 24 kHz, and 20 ms in gives 20 ms out, which
keeps frame-oriented sinks on a steady cadence. There is no drift over time.

PyAV and numpy are imported on first use, so importing the media package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame as AvAudioFrame

__all__ = ["Resampler", "preload"]


def preload() -> None:
    """Import PyAV and run one conversion now.

    The first resampling in a process imports PyAV and FFmpeg (~190 ms measured here);
    done on the event loop in the middle of calls, that stalls every call's media
    clock, so the gateway calls this at start.
    """
    Resampler(8000, 16000).resample(bytes(320))


class Resampler:
    """Stateful PCM16 mono sample-rate converter for one stream.

    Args:
        src_rate: input sample rate in Hz (e.g. 8000).
        dst_rate: output sample rate in Hz (e.g. 24000).

    When the rates are equal the converter is the identity and returns its input.

    Example:
        >>> r = Resampler(8000, 24000)
        >>> len(r.resample(bytes(320)))  # 20 ms in, 20 ms out (480 samples)
        960
    """

    __slots__ = ("_av", "_carry", "_in_samples", "_out_samples", "_primed", "dst_rate",
                 "src_rate")

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._av: Any = None  # av.AudioResampler, created on first use
        self._carry = b""
        self._in_samples = 0
        self._out_samples = 0
        self._primed = False

    @property
    def identity(self) -> bool:
        """True when the rates are equal and audio passes unchanged."""
        return self.src_rate == self.dst_rate

    @property
    def in_samples(self) -> int:
        """Samples consumed so far (at ``src_rate``)."""
        return self._in_samples

    @property
    def out_samples(self) -> int:
        """Samples produced so far (at ``dst_rate``)."""
        return self._out_samples

    def resample(self, pcm16: bytes) -> bytes:
        """Convert the next chunk of the stream.

        Args:
            pcm16: PCM16 little-endian mono at ``src_rate``, any length. An odd trailing
                byte is kept and prepended to the next chunk.

        Returns:
            PCM16 mono at ``dst_rate``; about ``len(pcm16) * dst_rate / src_rate`` bytes.
        """
        if self._carry:
            pcm16 = self._carry + pcm16
            self._carry = b""
        if len(pcm16) % 2:
            self._carry = pcm16[-1:]
            pcm16 = pcm16[:-1]
        n = len(pcm16) // 2
        if n == 0:
            return b""
        self._in_samples += n
        if self.src_rate == self.dst_rate:
            self._out_samples += n
            return pcm16
        import numpy as np
        from av.audio.frame import AudioFrame as AvAudioFrame

        if self._av is None:
            from av import AudioResampler

            self._av = AudioResampler(format="s16", layout="mono", rate=self.dst_rate)
        frame = AvAudioFrame.from_ndarray(
            np.frombuffer(pcm16, dtype=np.int16).reshape(1, n), format="s16", layout="mono"
        )
        frame.sample_rate = self.src_rate
        out = self._collect(self._av.resample(frame))
        if not self._primed and out:
            self._primed = True
            expected = round(self._in_samples * self.dst_rate / self.src_rate)
            deficit = expected - (self._out_samples + len(out) // 2)
            if deficit > 0:
                out = bytes(2 * deficit) + out
        self._out_samples += len(out) // 2
        return out

    def flush(self) -> bytes:
        """Return the audio still held inside the filter (end of stream) and reset."""
        out = b""
        if self._av is not None:
            out = self._collect(self._av.resample(None))
            self._out_samples += len(out) // 2
        self.reset()
        return out

    def reset(self) -> None:
        """Forget the stream: the next chunk starts a new one."""
        self._av = None
        self._carry = b""
        self._primed = False

    @staticmethod
    def _collect(frames: list[AvAudioFrame]) -> bytes:
        if not frames:
            return b""
        if len(frames) == 1:
            return frames[0].to_ndarray().tobytes()
        return b"".join(f.to_ndarray().tobytes() for f in frames)
