"""The mix-minus mixer (gateway/media/mixer.py), from bytes: each participant gets the sum
of everyone else, int32-accumulated and clipped once; missing frames are silence."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.media.mixer import MixMinusMixer, measure_cost


def frame(values: list[int] | np.ndarray, samples: int = 320) -> bytes:
    """PCM16 LE bytes of ``values`` repeated/cut to ``samples``."""
    arr = np.resize(np.asarray(values, dtype=np.int64), samples)
    return arr.astype("<i2").tobytes()


def samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.int64)


def test_frame_geometry_defaults_to_16k_20ms():
    m = MixMinusMixer()
    assert (m.sample_rate, m.frame_samples, m.frame_bytes) == (16000, 320, 640)
    assert MixMinusMixer(8000).frame_bytes == 320
    assert m.silence() == bytes(640)
    with pytest.raises(ValueError):
        MixMinusMixer(0)


def test_each_participant_hears_the_sum_of_the_others_only():
    m = MixMinusMixer()
    rng = np.random.default_rng(7)
    inputs = [rng.integers(-8000, 8000, 320) for _ in range(4)]
    out = m.mix([frame(x) for x in inputs])
    assert len(out.minus) == 4
    for i, got in enumerate(out.minus):
        expected = sum(x for j, x in enumerate(inputs) if j != i)
        assert np.array_equal(samples(got), expected), i
        assert len(got) == 640
    assert np.array_equal(samples(out.total), sum(inputs))


def test_distinct_tones_are_separated_exactly():
    """Three tones: participant i's output carries no trace of tone i."""
    t = np.arange(320) / 16000
    tones = [np.round(6000 * np.sin(2 * np.pi * f * t)).astype(np.int64) for f in (500, 1100, 1700)]
    out = MixMinusMixer().mix([frame(x) for x in tones])
    for i, got in enumerate(out.minus):
        others = [tones[j] for j in range(3) if j != i]
        assert np.array_equal(samples(got), others[0] + others[1])
        # what is left after removing the others is exactly nothing of tone i
        assert not np.any(samples(got) - others[0] - others[1])


def test_sums_accumulate_in_int32_and_clip_once():
    m = MixMinusMixer(8000)
    loud = frame([30000])
    out = m.mix([loud, loud, loud, frame([-30000])])
    # participant 0 hears 30000 + 30000 - 30000 = 30000: no intermediate int16 overflow
    assert set(samples(out.minus[0])) == {30000}
    # participant 3 hears 90000 -> clipped to +32767
    assert set(samples(out.minus[3])) == {32767}
    # total 60000 -> clipped
    assert set(samples(out.total)) == {32767}
    neg = m.mix([frame([-30000]), frame([-30000]), frame([-30000])])
    assert set(samples(neg.minus[0])) == {-32768}
    assert set(samples(neg.total)) == {-32768}


def test_missing_frames_are_silence():
    m = MixMinusMixer(8000)
    a = frame([1000], 160)
    out = m.mix([a, None, b""])
    assert samples(out.minus[0]).tolist() == [0] * 160  # the others sent nothing
    assert samples(out.minus[1]).tolist() == [1000] * 160
    assert samples(out.minus[2]).tolist() == [1000] * 160


def test_short_frames_are_padded_and_long_frames_cut():
    m = MixMinusMixer(8000)
    short = frame([500], 100)  # 100 samples of 160
    long = frame([7], 200)
    out = m.mix([short, long, None])
    heard = samples(out.minus[2])
    assert heard[:100].tolist() == [507] * 100
    assert heard[100:].tolist() == [7] * 60
    assert len(out.minus[0]) == 320
    # an odd trailing byte is ignored, not misaligned
    odd = frame([300], 10) + b"\x01"
    assert samples(m.mix([odd, None]).minus[1])[:11].tolist() == [300] * 10 + [0]


def test_one_participant_hears_nothing():
    out = MixMinusMixer().mix([frame([12345])])
    assert out.minus == [bytes(640)]
    assert set(samples(out.total)) == {12345}


def test_no_participants():
    out = MixMinusMixer().mix([])
    assert out.minus == [] and out.total == bytes(640)


def test_ticks_are_independent():
    m = MixMinusMixer(8000)
    m.mix([frame([100]), frame([200]), frame([300])])
    out = m.mix([frame([1]), frame([2])])  # fewer participants: nothing left over
    assert set(samples(out.minus[0])) == {2}
    assert set(samples(out.minus[1])) == {1}


def test_measure_cost_reports_microseconds():
    cost = measure_cost(3, 8000, ticks=20, repeat=2)
    assert cost > 0
