"""Format conversion on a media route edge (ARCHITECTURE.md, "The media path").

Decode (ITU-T G.711, see :mod:`gateway.media.g711`) -> resample (PyAV, see
:mod:`gateway.media.resample`) -> encode. Same format: pass-through with no work.
μ-law <-> A-law at the same rate: a byte-for-byte table transcode, no decode to PCM16.
Mono only for now.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.errors import MediaError
from gateway.media import g711
from gateway.media.format import AudioFormat, Encoding
from gateway.media.resample import Resampler

__all__ = ["FormatConverter"]

_DECODERS: dict[Encoding, Callable[[bytes], bytes] | None] = {
    Encoding.PCM16: None,
    Encoding.PCMU: g711.ulaw_to_pcm16,
    Encoding.PCMA: g711.alaw_to_pcm16,
}
_ENCODERS: dict[Encoding, Callable[[bytes], bytes] | None] = {
    Encoding.PCM16: None,
    Encoding.PCMU: g711.pcm16_to_ulaw,
    Encoding.PCMA: g711.pcm16_to_alaw,
}
_TRANSCODERS: dict[tuple[Encoding, Encoding], Callable[[bytes], bytes]] = {
    (Encoding.PCMU, Encoding.PCMA): g711.ulaw_to_alaw,
    (Encoding.PCMA, Encoding.PCMU): g711.alaw_to_ulaw,
}


def _check(fmt: AudioFormat, role: str) -> None:
    if not isinstance(fmt, AudioFormat):
        raise MediaError(f"{role} format must be an AudioFormat, got {type(fmt).__name__}")
    if fmt.encoding not in _DECODERS:
        raise MediaError(f"unsupported {role} encoding {fmt.encoding!r}")
    if fmt.channels != 1:
        raise MediaError(f"unsupported {role} format {fmt}: only mono audio is supported")
    if fmt.sample_rate <= 0:
        raise MediaError(f"unsupported {role} format {fmt}: bad sample rate")


class FormatConverter:
    """Converts one stream of audio from ``src`` to ``dst`` (stateful: one per route).

    Args:
        src: format of the incoming bytes.
        dst: format wanted by the sink.

    Attributes:
        src: the input :class:`AudioFormat`.
        dst: the output :class:`AudioFormat`.
        passthrough: True when ``src == dst``; frames should be forwarded untouched and
            :meth:`convert` returns its input unchanged.

    Raises:
        MediaError: a format is not mono PCM16/PCMU/PCMA with a positive rate.
    """

    __slots__ = ("_decode", "_encode", "_pending", "_resampler", "_transcode", "dst",
                 "passthrough", "src")

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        _check(src, "source")
        _check(dst, "destination")
        self.src = src
        self.dst = dst
        self.passthrough = src == dst
        self._transcode: Callable[[bytes], bytes] | None = None
        self._decode = _DECODERS[src.encoding]
        self._encode = _ENCODERS[dst.encoding]
        self._resampler: Resampler | None = None
        self._pending = b""
        if src.sample_rate == dst.sample_rate:
            self._transcode = _TRANSCODERS.get((src.encoding, dst.encoding))
        else:
            self._resampler = Resampler(src.sample_rate, dst.sample_rate)

    def convert(self, data: bytes) -> bytes:
        """Convert the next chunk of the stream.

        Args:
            data: audio in :attr:`src`, any length (a 20 ms PCMU frame is 160 bytes).
                For a PCM16 source an odd trailing byte is kept for the next call.

        Returns:
            The same span of audio in :attr:`dst`, e.g. 960 bytes of PCM16 24 kHz for a
            160-byte PCMU frame. The first chunk through a resampler may carry ~2 ms of
            leading silence (filter delay); lengths track the input from then on.
        """
        if self.passthrough:
            return data
        if self._transcode is not None:
            return self._transcode(data)
        if self._decode is not None:
            pcm = self._decode(data)
        else:
            if self._pending:
                data = self._pending + data
                self._pending = b""
            if len(data) % 2:
                self._pending = data[-1:]
                data = data[:-1]
            pcm = data
        if self._resampler is not None:
            pcm = self._resampler.resample(pcm)
        return self._encode(pcm) if self._encode is not None else pcm

    def __repr__(self) -> str:
        return f"FormatConverter({self.src} -> {self.dst})"
