"""PlayoutBuffer tests: fixed 20 ms frames out of bursts, filler, clear, played_ms."""

from __future__ import annotations

from gateway.media.format import PCM16_24K, PCMU_8K
from gateway.media.playout import PlayoutBuffer


def test_empty_gives_filler_silence() -> None:
    pb = PlayoutBuffer(PCMU_8K)
    assert pb.read_frame() == b"\xff" * 160
    assert pb.played_ms == 0 and pb.queued_ms == 0 and not pb.is_playing


def test_burst_is_rechunked_into_frames() -> None:
    pb = PlayoutBuffer(PCMU_8K)
    data = bytes(range(100)) * 5  # 500 bytes = 62.5 ms
    pb.write(data[:123])
    pb.write(data[123:])
    assert pb.queued_ms == 62.5 and pb.is_playing
    frames = [pb.read_frame() for _ in range(5)]
    assert all(len(f) == 160 for f in frames)
    assert b"".join(frames[:3]) == data[:480]
    assert frames[3] == data[480:] + b"\xff" * 140  # partial frame padded with silence
    assert frames[4] == b"\xff" * 160
    assert pb.played_ms == 62.5
    assert not pb.is_playing


def test_clear_drops_at_once_and_keeps_played() -> None:
    pb = PlayoutBuffer(PCM16_24K)
    pb.write(bytes(960 * 10))
    pb.read_frame()
    pb.read_frame()
    pb.clear()
    assert pb.queued_ms == 0 and not pb.is_playing
    assert pb.read_frame() == bytes(960)
    assert pb.played_ms == 40.0
    pb.write(b"\x01\x00" * 480)
    assert pb.read_frame() == b"\x01\x00" * 480
    assert pb.played_ms == 60.0


def test_read_into_does_not_allocate_frames() -> None:
    pb = PlayoutBuffer(PCMU_8K)
    out = bytearray(160)
    pb.write(b"\x01" * 200)
    assert pb.read_into(out) == 160 and out == b"\x01" * 160
    assert pb.read_into(memoryview(out)) == 40
    assert out == b"\x01" * 40 + b"\xff" * 120
    assert pb.read_into(out) == 0 and out == b"\xff" * 160


def test_max_ms_drops_oldest() -> None:
    pb = PlayoutBuffer(PCMU_8K, max_ms=100)
    pb.write(b"\x01" * 800)
    pb.write(b"\x02" * 800)
    assert pb.queued_ms == 100
    assert pb.dropped_ms == 100
    assert pb.read_frame() == b"\x02" * 160


def test_long_stream_compacts() -> None:
    pb = PlayoutBuffer(PCMU_8K)
    for i in range(2000):
        pb.write(bytes([i % 250]) * 160)
        pb.write(bytes([i % 250]) * 160)
        assert pb.read_frame() == bytes([(i // 2) % 250]) * 160
    assert pb.queued_ms == 2000 * 20
    assert pb.played_ms == 2000 * 20
