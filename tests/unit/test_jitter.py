"""JitterBuffer tests: fill, reorder, duplicates, late, loss, wrap-around, resync."""

from __future__ import annotations

from gateway.media.jitter import JitterBuffer


def _p(seq: int) -> bytes:
    return seq.to_bytes(2, "big") * 80


def _feed(jb: JitterBuffer, seqs: list[int]) -> None:
    for s in seqs:
        jb.push(s & 0xFFFF, (s * 160) & 0xFFFFFFFF, _p(s & 0xFFFF))


def _drain(jb: JitterBuffer, n: int) -> list[bytes | None]:
    return [jb.pop() for _ in range(n)]


def test_waits_for_depth_before_playout() -> None:
    jb = JitterBuffer(depth_frames=3)
    assert jb.pop() is None and not jb.started
    _feed(jb, [10])
    assert jb.pop() is None and not jb.started
    _feed(jb, [11])
    assert jb.pop() is None and not jb.started
    _feed(jb, [12])
    assert jb.pop() == _p(10) and jb.started
    assert _drain(jb, 2) == [_p(11), _p(12)]


def test_in_order_stream_with_steady_arrival() -> None:
    jb = JitterBuffer(depth_frames=2)
    out = []
    for s in range(100, 200):
        _feed(jb, [s])
        out.append(jb.pop())
    played = [x for x in out if x is not None]
    assert played == [_p(s) for s in range(100, 100 + len(played))]
    assert len(played) >= 97
    assert jb.lost == jb.late == jb.duplicates == 0


def test_reorders_and_counts() -> None:
    jb = JitterBuffer(depth_frames=3)
    _feed(jb, [1, 3, 2, 5, 4])
    assert jb.reordered == 2
    assert _drain(jb, 5) == [_p(s) for s in (1, 2, 3, 4, 5)]


def test_duplicates_dropped_buffered_and_played() -> None:
    jb = JitterBuffer(depth_frames=2)
    _feed(jb, [1, 2, 2, 3])
    assert jb.duplicates == 1
    assert jb.pop() == _p(1)
    _feed(jb, [1])  # already played
    assert jb.duplicates == 2
    assert _drain(jb, 2) == [_p(2), _p(3)]


def test_loss_is_concealed_and_late_packet_dropped() -> None:
    jb = JitterBuffer(depth_frames=2)
    _feed(jb, [1, 2, 4, 5])
    assert _drain(jb, 3) == [_p(1), _p(2), None]
    assert jb.lost == 1
    _feed(jb, [3])  # arrives after its slot was concealed
    assert jb.late == 1
    assert _drain(jb, 2) == [_p(4), _p(5)]


def test_sequence_wraparound() -> None:
    jb = JitterBuffer(depth_frames=2)
    seqs = list(range(65530, 65536)) + list(range(0, 6))
    out = []
    for s in seqs:
        _feed(jb, [s])
        out.append(jb.pop())
    out += _drain(jb, 2)
    assert [x for x in out if x is not None] == [_p(s) for s in seqs]
    assert jb.lost == jb.late == jb.resyncs == 0


def test_underrun_then_resume_without_counting_loss() -> None:
    jb = JitterBuffer(depth_frames=2)
    _feed(jb, [1, 2])
    assert _drain(jb, 3) == [_p(1), _p(2), None]
    assert jb.underruns == 1 and jb.lost == 0
    _feed(jb, [3, 4])  # the stream resumes in sequence (e.g. after silence suppression)
    assert _drain(jb, 2) == [_p(3), _p(4)]
    assert jb.lost == 0


def test_short_stream_starts_after_depth_ticks() -> None:
    jb = JitterBuffer(depth_frames=3)
    _feed(jb, [7])
    assert _drain(jb, 3) == [None, None, None]
    assert jb.pop() == _p(7)


def test_resync_on_big_jump_after_two_sequential_packets() -> None:
    jb = JitterBuffer(depth_frames=2, max_frames=50)
    _feed(jb, [100, 101, 102])
    assert _drain(jb, 3) == [_p(100), _p(101), _p(102)]
    _feed(jb, [30000])  # a single stray packet: held on probation, not played
    assert jb.resyncs == 0
    _feed(jb, [103])
    assert jb.discarded == 1
    assert jb.pop() == _p(103)
    _feed(jb, [40000, 40001, 40002])  # the remote restarted its stream
    assert jb.resyncs == 1
    assert [x for x in _drain(jb, 5) if x is not None] == [_p(40000), _p(40001), _p(40002)]


def test_placeholder_slot_is_not_loss() -> None:
    jb = JitterBuffer(depth_frames=2)
    _feed(jb, [1])
    jb.push(2, 320, None)  # an RFC 4733 packet in the sequence space
    _feed(jb, [3])
    assert _drain(jb, 3) == [_p(1), None, _p(3)]
    assert jb.lost == 0


def test_reset_accepts_new_stream() -> None:
    jb = JitterBuffer(depth_frames=1)
    _feed(jb, [5, 6])
    assert _drain(jb, 2) == [_p(5), _p(6)]
    jb.reset()
    _feed(jb, [9000])
    assert jb.pop() == _p(9000)


def test_latency_trim_when_buffer_stays_deep() -> None:
    jb = JitterBuffer(depth_frames=2, max_frames=50)
    _feed(jb, list(range(0, 20)))  # a burst: 20 frames queued
    n = 0
    for s in range(20, 120):
        _feed(jb, [s])
        if jb.pop() is not None:
            n += 1
    assert jb.trimmed > 0
    assert jb.buffered < 20
    assert jb.stats["trimmed"] == jb.trimmed
