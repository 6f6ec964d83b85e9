"""ITU-T G.711 μ-law (PCMU) and A-law (PCMA) codecs for 16-bit linear PCM.

Follows ITU-T Recommendation G.711 (11/1988) and RFC 3551 §4.5.14: one byte per
sample, 8000 Hz on telephony paths. Linear audio is PCM16: signed 16-bit
little-endian, mono. The codecs are the stdlib ``audioop`` functions (the
``audioop-lts`` package provides the same module on Python 3.13+), which are
bit-exact with G.711, including its polarity: A-law ``0xD5`` is the smallest
positive step (+8), ``0x55`` the smallest negative one (-8); μ-law ``0xFF`` is
+0 and ``0x7F`` is -0. Both laws set the top bit for positive samples.

μ-law <-> A-law transcoding goes through 256-entry tables (decode one law,
encode the other, as G.711 Table 3/4 does), so it costs one ``bytes.translate``.
"""

from __future__ import annotations

import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "ALAW_SILENCE",
    "ULAW_SILENCE",
    "alaw_to_pcm16",
    "alaw_to_ulaw",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "ulaw_to_alaw",
    "ulaw_to_pcm16",
]

#: The G.711 code of a zero sample (digital silence), one byte per sample.
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

_BIG_ENDIAN = sys.byteorder == "big"


def _to_native(pcm16: bytes) -> bytes:
    # audioop works on native-endian samples; PCM16 in the gateway is little-endian.
    return audioop.byteswap(pcm16, 2) if _BIG_ENDIAN else pcm16


_from_native = _to_native


def _check_pcm16(pcm16: bytes) -> None:
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm16)}")


def pcm16_to_ulaw(pcm16: bytes) -> bytes:
    """Encode PCM16 to G.711 μ-law.

    Args:
        pcm16: signed 16-bit little-endian mono samples (2 bytes per sample;
            20 ms at 8000 Hz = 320 bytes).

    Returns:
        One μ-law byte per input sample (20 ms at 8000 Hz = 160 bytes).

    Raises:
        ValueError: ``pcm16`` has an odd number of bytes.
    """
    _check_pcm16(pcm16)
    return audioop.lin2ulaw(_to_native(pcm16), 2)


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """Decode G.711 μ-law to PCM16 (two little-endian bytes per input byte)."""
    return _from_native(audioop.ulaw2lin(ulaw, 2))


def pcm16_to_alaw(pcm16: bytes) -> bytes:
    """Encode PCM16 to G.711 A-law (one byte per sample, even bits inverted per G.711).

    Raises:
        ValueError: ``pcm16`` has an odd number of bytes.
    """
    _check_pcm16(pcm16)
    return audioop.lin2alaw(_to_native(pcm16), 2)


def alaw_to_pcm16(alaw: bytes) -> bytes:
    """Decode G.711 A-law to PCM16 (two little-endian bytes per input byte)."""
    return _from_native(audioop.alaw2lin(alaw, 2))


def _table(decode, encode) -> bytes:  # type: ignore[no-untyped-def]
    return encode(decode(bytes(range(256)), 2), 2)


_ULAW_TO_ALAW = _table(audioop.ulaw2lin, audioop.lin2alaw)
_ALAW_TO_ULAW = _table(audioop.alaw2lin, audioop.lin2ulaw)


def ulaw_to_alaw(ulaw: bytes) -> bytes:
    """Transcode G.711 μ-law to A-law byte for byte (no resampling, same length)."""
    return ulaw.translate(_ULAW_TO_ALAW)


def alaw_to_ulaw(alaw: bytes) -> bytes:
    """Transcode G.711 A-law to μ-law byte for byte (no resampling, same length)."""
    return alaw.translate(_ALAW_TO_ULAW)
