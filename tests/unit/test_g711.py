"""G.711 (ITU-T G.711) codec tests: known code points, polarity, round trips."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from gateway.media import g711


def _pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def _samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def test_alaw_polarity_matches_g711() -> None:
    # G.711 A-law: sign bit 1 = positive; even bits inverted (XOR 0x55).
    assert _samples(g711.alaw_to_pcm16(b"\xd5")) == [8]  # smallest positive step
    assert _samples(g711.alaw_to_pcm16(b"\x55")) == [-8]  # smallest negative step
    assert _samples(g711.alaw_to_pcm16(b"\xaa")) == [32256]  # largest positive
    assert _samples(g711.alaw_to_pcm16(b"\x2a")) == [-32256]  # largest negative
    assert g711.pcm16_to_alaw(_pcm(1000))[0] & 0x80  # positive -> top bit set
    assert not g711.pcm16_to_alaw(_pcm(-1000))[0] & 0x80
    assert g711.pcm16_to_alaw(_pcm(0)) == b"\xd5"


def test_ulaw_code_points() -> None:
    assert _samples(g711.ulaw_to_pcm16(b"\xff\x7f")) == [0, 0]  # +0 and -0
    assert _samples(g711.ulaw_to_pcm16(b"\x80\x00")) == [32124, -32124]
    assert g711.pcm16_to_ulaw(_pcm(0)) == b"\xff"
    assert g711.pcm16_to_ulaw(_pcm(1000))[0] & 0x80
    assert not g711.pcm16_to_ulaw(_pcm(-1000))[0] & 0x80


@pytest.mark.parametrize(("enc", "dec"), [
    (g711.pcm16_to_ulaw, g711.ulaw_to_pcm16),
    (g711.pcm16_to_alaw, g711.alaw_to_pcm16),
])
def test_round_trip_error_is_small(enc, dec) -> None:  # type: ignore[no-untyped-def]
    x = (np.sin(np.arange(1600) * 2 * np.pi * 440 / 8000) * 12000).astype(np.int16)
    y = np.frombuffer(dec(enc(x.tobytes())), dtype=np.int16)
    assert len(y) == len(x)
    err = np.abs(y.astype(int) - x.astype(int))
    assert err.max() <= 12000 * 0.04  # logarithmic quantisation: < ~4% of the peak
    # every code decodes and re-encodes to itself (μ-law -0, 0x7F, is an alias of +0)
    codes = bytes(range(256))
    expected = codes.replace(b"\x7f", b"\xff") if enc is g711.pcm16_to_ulaw else codes
    assert enc(dec(codes)) == expected


def test_transcode_matches_decode_encode() -> None:
    codes = bytes(range(256))
    assert g711.ulaw_to_alaw(codes) == g711.pcm16_to_alaw(g711.ulaw_to_pcm16(codes))
    assert g711.alaw_to_ulaw(codes) == g711.pcm16_to_ulaw(g711.alaw_to_pcm16(codes))
    assert g711.ulaw_to_alaw(b"\xff" * 160) == b"\xd5" * 160  # silence stays silence
    # A-law's smallest step (+8) is μ-law 0xFE (+8): near-silence stays near-silence.
    assert g711.alaw_to_ulaw(b"\xd5" * 4) == b"\xfe" * 4


def test_frame_sizes_and_odd_input() -> None:
    assert len(g711.pcm16_to_ulaw(bytes(320))) == 160
    assert len(g711.alaw_to_pcm16(bytes(160))) == 320
    with pytest.raises(ValueError):
        g711.pcm16_to_ulaw(b"\x00")
