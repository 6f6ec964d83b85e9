"""Streaming resampler tests: identity, length tracking (no drift), low latency, quality."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.media.resample import Resampler


def _tone(rate: int, ms: int, hz: float = 440.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * hz * t) * 10000).astype(np.int16).tobytes()


def test_identity_when_rates_equal() -> None:
    r = Resampler(8000, 8000)
    data = _tone(8000, 20)
    assert r.identity
    assert r.resample(data) is data


@pytest.mark.parametrize(("src", "dst"), [(8000, 24000), (24000, 8000), (8000, 16000),
                                          (16000, 8000), (48000, 8000), (8000, 48000)])
def test_output_tracks_input_frame_by_frame(src: int, dst: int) -> None:
    r = Resampler(src, dst)
    whole = _tone(src, 1000)
    step = src * 20 // 1000 * 2
    outs = [r.resample(whole[i:i + step]) for i in range(0, len(whole), step)]
    # 50 frames of 20 ms give 1 s, and every frame gives exactly 20 ms (no drift).
    assert sum(len(o) for o in outs) == dst * 2
    assert {len(o) for o in outs} == {dst * 20 // 1000 * 2}


def test_latency_is_a_few_ms() -> None:
    r = Resampler(8000, 24000)
    impulse = np.zeros(1600, dtype=np.int16)
    impulse[800] = 20000
    out = b"".join(r.resample(impulse[i:i + 160].tobytes()) for i in range(0, 1600, 160))
    y = np.frombuffer(out, dtype=np.int16)
    delay_samples = int(np.argmax(np.abs(y))) - 800 * 3
    assert 0 <= delay_samples <= 24 * 5  # at most 5 ms at 24 kHz


def test_odd_chunks_and_any_length() -> None:
    r = Resampler(24000, 8000)
    data = _tone(24000, 200)
    pieces = [data[i:i + 333] for i in range(0, len(data), 333)]  # odd byte counts
    out = b"".join(r.resample(p) for p in pieces)
    assert len(out) % 2 == 0
    assert abs(len(out) // 2 - 1600) <= 16
    assert r.in_samples == 4800


def test_downsample_removes_alias() -> None:
    # 5 kHz at 24 kHz is above 8 kHz's Nyquist: must be filtered out, not folded to 3 kHz.
    r = Resampler(24000, 8000)
    out = r.resample(_tone(24000, 500, hz=5000))
    y = np.frombuffer(out, dtype=np.int16)[400:]
    assert np.sqrt(np.mean(y.astype(float) ** 2)) < 10000 * 0.707 * 0.05


def test_flush_returns_tail() -> None:
    r = Resampler(8000, 24000)
    out = r.resample(_tone(8000, 20))
    tail = r.flush()
    assert len(out) + len(tail) >= 480 * 2
