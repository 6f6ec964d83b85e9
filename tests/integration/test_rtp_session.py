"""Two RtpSessions on loopback: audio both ways, symmetric RTP, RFC 4733, garbage, barge-in.

Timing is driven by the shared media clock; tests wait for conditions (counted in clock
ticks), never for wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from gateway.adapters.sip.rtp import RtpPacket, build_rtp, parse_rtp, parse_telephone_event
from gateway.adapters.sip.rtp import build_telephone_event as ev
from gateway.adapters.sip.rtp_session import PortAllocator, RtpPortsExhausted, RtpSession
from gateway.errors import MediaError
from gateway.media.clock import get_media_clock
from gateway.media.format import PCMA_8K, PCMU_8K, AudioFormat, AudioFrame

HOST = "127.0.0.1"
DTMF_PT = 101


@dataclass
class Sink:
    frames: list[AudioFrame] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)

    def real(self, silence: bytes = b"\xff" * 160) -> list[bytes]:
        return [f.data for f in self.frames if f.data != silence]


async def ticks(n: int) -> None:
    """Wait for ``n`` media clock ticks."""
    clock = get_media_clock()
    done = asyncio.get_running_loop().create_future()
    count = 0

    def on_tick() -> None:
        nonlocal count
        count += 1
        if count >= n and not done.done():
            done.set_result(None)

    h = clock.subscribe(on_tick)
    try:
        await done
    finally:
        clock.unsubscribe(h)


async def until(cond: Callable[[], bool], max_ticks: int = 500) -> None:
    """Wait (in clock ticks) until ``cond()`` holds; fail after ``max_ticks``."""
    for _ in range(max_ticks):
        if cond():
            return
        await ticks(1)
    raise AssertionError(f"condition not met within {max_ticks} ticks")


@pytest.fixture
def ports() -> PortAllocator:
    base = random.randrange(20000, 60000, 2)
    return PortAllocator(base, base + 199)


@pytest.fixture
async def pair(ports: PortAllocator) -> AsyncIterator[tuple[RtpSession, RtpSession]]:
    a = await RtpSession.open(HOST, ports)
    b = await RtpSession.open(HOST, ports)
    yield a, b
    await a.close()
    await b.close()


def _frames(n: int, salt: int) -> list[bytes]:
    # distinct, never the μ-law silence byte 0xFF
    return [bytes(((i * 7 + j + salt) % 250) for j in range(160)) for i in range(n)]


def _start(s: RtpSession, remote: tuple[str, int], sink: Sink,
           fmt: AudioFormat = PCMU_8K) -> None:
    s.start(remote, 0 if fmt is PCMU_8K else 8, fmt, DTMF_PT, sink.frames.append,
            sink.digits.append)


async def test_audio_both_ways_with_symmetric_latching(
        pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    assert a.local_port % 2 == 0 and b.local_port % 2 == 0
    sa, sb = Sink(), Sink()
    _start(a, (HOST, b.local_port), sa)
    # B was told a wrong address (as behind a NAT): it must latch to A's real source.
    wrong = (HOST, b.local_port + 100)
    _start(b, wrong, sb)
    to_b, to_a = _frames(50, 1), _frames(50, 2)
    for f in to_b:
        a.play(AudioFrame(f, PCMU_8K))
    await until(lambda: b.latched)
    assert b.remote == (HOST, a.local_port)
    for f in to_a:
        b.play(AudioFrame(f, PCMU_8K))
    await until(lambda: len(sb.real()) >= 50 and len(sa.real()) >= 50)
    assert sb.real() == to_b
    assert sa.real() == to_a
    assert all(len(f.data) == 160 and f.format == PCMU_8K for f in sb.frames)
    assert a.played_ms == b.played_ms == 1000.0
    assert a.queued_ms == 0
    st = b.stats
    assert st.packets_received > 50 and st.lost == st.late == st.duplicates == 0
    assert a.stats.packets_sent >= 50


async def test_frames_every_tick_once_started(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    sa, sb = Sink(), Sink()
    _start(a, (HOST, b.local_port), sa)
    _start(b, (HOST, a.local_port), sb)
    await ticks(10)
    assert sa.frames and sb.frames  # filler silence flows both ways (keeps NATs open)
    n = len(sb.frames)
    await ticks(10)
    assert len(sb.frames) == n + 10  # one frame per tick, concealed or not


async def test_dtmf_digits_arrive_once_in_order(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    sa, sb = Sink(), Sink()
    _start(a, (HOST, b.local_port), sa)
    _start(b, (HOST, a.local_port), sb)
    a.send_digits("123#")
    await until(lambda: len(sb.digits) >= 4)
    await until(lambda: not a.sending_digits)
    await ticks(20)
    assert sb.digits == ["1", "2", "3", "#"]
    assert b.stats.dtmf_received == 4 and a.stats.dtmf_sent == 4
    with pytest.raises(ValueError):
        a.send_digits("12E")


class _Capture(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(data)


async def test_rfc4733_packets_on_the_wire(ports: PortAllocator) -> None:
    loop = asyncio.get_running_loop()
    cap = _Capture()
    transport, _ = await loop.create_datagram_endpoint(lambda: cap, local_addr=(HOST, 0))
    peer = transport.get_extra_info("sockname")
    a = await RtpSession.open(HOST, ports)
    try:
        _start(a, peer, Sink())
        await until(lambda: len(cap.packets) >= 3)
        a.send_digits("19", duration_ms=100, gap_ms=60)
        await until(lambda: not a.sending_digits)
        await ticks(5)
    finally:
        await a.close()
        transport.close()
    pkts = [parse_rtp(p) for p in cap.packets]
    seqs = [p.sequence for p in pkts]
    assert all((y - x) & 0xFFFF == 1 for x, y in itertools.pairwise(seqs))
    ts = [p.timestamp for p in pkts]
    events = [(i, p) for i, p in enumerate(pkts) if p.payload_type == DTMF_PT]
    assert len(events) == 2 * (4 + 3)  # 100 ms: 4 updates + the end packet three times
    by_ts: dict[int, list[tuple[int, RtpPacket]]] = {}
    for i, p in events:
        by_ts.setdefault(p.timestamp, []).append((i, p))
    assert len(by_ts) == 2  # each digit is its own event with its own timestamp
    for (code, group) in zip((1, 9), by_ts.values(), strict=True):
        idx = [i for i, _ in group]
        assert idx == list(range(idx[0], idx[0] + 7))  # one packet per tick, no audio between
        evs = [parse_telephone_event(p.payload) for _, p in group]
        assert [e.event for e in evs] == [code] * 7
        assert [e.duration for e in evs] == [160, 320, 480, 640, 800, 800, 800]
        assert [e.end for e in evs] == [False] * 4 + [True] * 3
        assert [p.marker for _, p in group] == [True] + [False] * 6
        # the event timestamp is the audio clock at the event's first packet
        first = idx[0]
        assert group[0][1].timestamp == (ts[first - 1] + 160) & 0xFFFFFFFF
    # 60 ms gap: three audio packets between the two events
    groups = list(by_ts.values())
    last_ev1, first_ev2 = groups[0][-1][0], groups[1][0][0]
    assert first_ev2 - last_ev1 - 1 == 3
    assert all(p.payload_type == 0 for i, p in enumerate(pkts)
               if last_ev1 < i < first_ev2)
    # audio timestamps keep advancing 160 per tick through the events
    audio = [(i, p.timestamp) for i, p in enumerate(pkts) if p.payload_type == 0]
    for (i1, t1), (i2, t2) in itertools.pairwise(audio):
        assert (t2 - t1) & 0xFFFFFFFF == 160 * (i2 - i1)
    assert pkts[0].marker  # first packet of the stream


async def test_garbage_is_dropped_and_counted(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    sa, sb = Sink(), Sink()
    _start(a, (HOST, b.local_port), sa)
    _start(b, (HOST, a.local_port), sb)
    frames = _frames(40, 3)
    for f in frames:
        a.play(AudioFrame(f, PCMU_8K))
    await until(lambda: b.latched)
    junk = [
        b"",
        b"\x00" * 5,
        b"hello world, this is not RTP",
        bytes.fromhex("40001234deadbeef01020304") + b"x" * 160,  # version 1
        build_rtp(96, 1, 2, 3, b"x" * 160),  # unknown payload type
        build_rtp(0, 500, 2, 3, b"x" * 160),  # valid, but from a foreign source
        b"\x80\xc8\x00\xff",  # RTCP with bogus length
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):
            for j in junk:
                s.sendto(j, (HOST, b.local_port))
    await until(lambda: len(sb.real()) >= 40)
    assert sb.real() == frames
    # the empty datagram may be dropped by the OS stack; everything else is counted
    assert b.stats.garbage >= 3 * (len(junk) - 1)
    assert b.remote == (HOST, a.local_port)  # still latched to the real peer


async def test_clear_playout_stops_within_a_tick(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    sa, sb = Sink(), Sink()
    _start(a, (HOST, b.local_port), sa)
    _start(b, (HOST, a.local_port), sb)
    frames = _frames(200, 4)  # 4 s of audio queued at once (an AI burst)
    a.play(AudioFrame(b"".join(frames), PCMU_8K))
    assert a.queued_ms == 4000.0
    await until(lambda: len(sb.real()) >= 10)
    a.clear_playout()  # barge-in
    assert a.queued_ms == 0
    played = a.played_ms
    assert played % 20 == 0 and played >= 200
    await ticks(1)
    assert a.played_ms == played  # nothing more of the old audio goes out
    await ticks(10)
    assert a.played_ms == played
    n = int(played // 20)
    assert sb.real() == frames[:n]  # exactly what played_ms says was sent


async def test_play_rejects_other_formats(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    _start(a, (HOST, b.local_port), Sink())
    with pytest.raises(MediaError):
        a.play(AudioFrame(b"\xd5" * 160, PCMA_8K))


async def test_pcma_session(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    sa, sb = Sink(), Sink()
    _start(a, (HOST, b.local_port), sa, PCMA_8K)
    _start(b, (HOST, a.local_port), sb, PCMA_8K)
    frames = _frames(5, 5)
    for f in frames:
        a.play(AudioFrame(f, PCMA_8K))
    await until(lambda: len(sb.real(b"\xd5" * 160)) >= 5)
    assert sb.real(b"\xd5" * 160) == frames


async def test_port_allocator_and_close(ports: PortAllocator) -> None:
    small_base = random.randrange(20000, 60000, 2)
    small = PortAllocator(small_base, small_base + 3)  # two pairs
    assert small.capacity == 2
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        try:
            busy.bind((HOST, small_base))
        except OSError:
            pytest.skip("port taken by another process")
        s1 = await RtpSession.open(HOST, small)  # skips the busy pair
        assert s1.local_port == small_base + 2
        with pytest.raises(RtpPortsExhausted):
            await RtpSession.open(HOST, small)
    assert small.in_use == 1
    await s1.close()
    await s1.close()  # idempotent
    assert small.in_use == 0
    s2 = await RtpSession.open(HOST, small)
    await s2.close()
    with pytest.raises(ValueError):
        PortAllocator(5001, 5001)


async def test_close_stops_ticking(pair: tuple[RtpSession, RtpSession]) -> None:
    a, b = pair
    sa = Sink()
    _start(a, (HOST, b.local_port), sa)
    _start(b, (HOST, a.local_port), Sink())
    await until(lambda: len(sa.frames) > 0)
    await a.close()
    n = len(sa.frames)
    await ticks(5)
    assert len(sa.frames) == n
    assert a.closed


async def test_dtmf_receive_dedupe_from_a_raw_peer(ports: PortAllocator) -> None:
    """Retransmitted end packets, repeated updates, a lost end and shared timestamps."""
    b = await RtpSession.open(HOST, ports)
    sb = Sink()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind((HOST, 0))
        _start(b, raw.getsockname(), sb)
        seq = [1000]

        def send(pt: int, ts: int, payload: bytes, marker: bool = False) -> None:
            raw.sendto(build_rtp(pt, seq[0], ts, 0xABC, payload, marker=marker),
                       (HOST, b.local_port))
            seq[0] += 1

        for i in range(3):
            send(0, i * 160, b"\x01" * 160)
        # digit 5: updates (one repeated), end x3
        send(DTMF_PT, 480, ev(5, duration=160), marker=True)
        send(DTMF_PT, 480, ev(5, duration=320))
        send(DTMF_PT, 480, ev(5, duration=320))
        for _ in range(3):
            send(DTMF_PT, 480, ev(5, end=True, duration=480))
        # digit 7 whose end packets are all lost, then digit 8
        send(DTMF_PT, 1600, ev(7, duration=160), marker=True)
        send(DTMF_PT, 1600, ev(7, duration=320))
        send(DTMF_PT, 2400, ev(8, duration=160), marker=True)
        for _ in range(3):
            send(DTMF_PT, 2400, ev(8, end=True, duration=320))
        # aiortp-style sender: two digits with the same timestamp
        for code in (1, 2):
            for _ in range(3):
                send(DTMF_PT, 0, ev(code, end=True, duration=800))
        # a late retransmission of digit 5's end
        send(DTMF_PT, 480, ev(5, end=True, duration=480))
        await until(lambda: len(sb.digits) >= 5)
        await ticks(30)
    await b.close()
    assert sb.digits == ["5", "7", "8", "1", "2"]
    assert b.stats.garbage == 0


async def test_new_ssrc_resyncs(ports: PortAllocator) -> None:
    b = await RtpSession.open(HOST, ports)
    sb = Sink()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind((HOST, 0))
        _start(b, raw.getsockname(), sb)
        for i in range(5):
            raw.sendto(build_rtp(0, 100 + i, i * 160, 1, bytes([1]) * 160), (HOST, b.local_port))
        await until(lambda: len(sb.real()) >= 5)
        # the far end switched media source: new SSRC, unrelated sequence numbers
        for i in range(5):
            raw.sendto(build_rtp(0, 40000 + i, 9999 + i * 160, 2, bytes([2]) * 160),
                       (HOST, b.local_port))
        await until(lambda: len(sb.real()) >= 10)
    await b.close()
    assert sb.real() == [bytes([1]) * 160] * 5 + [bytes([2]) * 160] * 5
