#!/usr/bin/env python3
"""SIP <-> Voice AI bridge load bench: N concurrent inbound PCMU calls with RTP through the
gateway to a local echoing OpenAI Realtime fake, measured during a steady window.

    python bench/sip_bridge.py --calls 10 50 100 [--duration 20] [--search]

Per load point N it starts, each in its own process group and temp dir:
  * the fake OpenAI Realtime server (tests/fakes/fake_openai_realtime.py, echo mode,
    strict=False, one fake instance per WebSocket connection) -- this same file run with
    ``--_fake-ai``;
  * the gateway (``vgw serve``) with a fresh SQLite database, WARNING logs to gw.err;
  * dumpcap on ``lo`` capturing UDP to/from the gateway's RTP port range;
  * sipp (bench/sipp/uac_pcmu_stream.xml): N calls offering PCMU only, each looping a
    human recording (asterisk demo-congrats) as 20 ms RTP packets.
Once every call is up (sipp logs "UP" after the ACK) and a settle time has passed, it
measures a window of ``--duration`` seconds (CPU and RSS of the gateway from /proc, RTP
from the capture), then kills everything (before any caller hangs up: SIPp 3.6.1 may
crash on the first BYE under load, its issue #699). See bench/README.md.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import glob
import itertools
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "bench" / "sipp" / "uac_pcmu_stream.xml"
DEFAULT_WAV = "/usr/share/asterisk/sounds/en/demo-congrats.wav"
FRAME = 160  # bytes of PCMU per 20 ms
HOST = "127.0.0.1"
JITTER_TARGET_MS = 10.0
TARGET_CALLS = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# ----------------------------------------------------------------------------------------
# The fake OpenAI Realtime server (subprocess mode)
# ----------------------------------------------------------------------------------------
def run_fake_ai(echo_turn_ms: float) -> None:
    """Serve the echo fake on 127.0.0.1:<free port>; print the port; run until killed.

    The project's FakeRealtimeServer keeps one connection (``self._ws``) per instance, so
    each WebSocket connection gets its own instance. The subclass keeps no per-event
    records (the tests' bookkeeping grows without bound under load) and skips validation.
    """
    import asyncio
    import base64
    import json

    sys.path.insert(0, str(ROOT))
    from websockets.asyncio.server import serve

    from tests.fakes.fake_openai_realtime import FakeRealtimeServer

    class LeanEchoFake(FakeRealtimeServer):
        async def send(self, event):  # type: ignore[override]
            event = {"event_id": self._id("event"), **event}
            ws = self._ws
            if ws is None:
                raise ConnectionError("no client connected to the fake")
            await ws.send(json.dumps(event))
            return event

        async def _notify(self) -> None:
            return None

        async def _on_client(self, event):  # type: ignore[override]
            if not isinstance(event, dict):
                return
            handler = getattr(self, "_c_" + str(event.get("type", "")).replace(".", "_"), None)
            if handler is None:
                await self.send_error(f"Invalid value: '{event.get('type')}'",
                                      code="invalid_value")
                return
            await handler(event)

        async def _c_input_audio_buffer_append(self, event):  # type: ignore[override]
            data = base64.b64decode(event["audio"])
            if data:
                await self._echo(data)

    async def main() -> None:
        gate = LeanEchoFake(mode="echo", strict=False)

        async def handler(ws) -> None:
            fake = LeanEchoFake(mode="echo", strict=False, echo_turn_ms=echo_turn_ms)
            await fake._handler(ws)

        async with serve(handler, HOST, 0, process_request=gate._process_request,
                         max_size=2**22) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.Future()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# ----------------------------------------------------------------------------------------
# Process handling
# ----------------------------------------------------------------------------------------
class Procs:
    """Every child this bench started; each in its own session (process group)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], *, cpus: set[int] | None = None,
              **kw) -> subprocess.Popen:
        def pre() -> None:
            if cpus:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, cpus)

        p = subprocess.Popen(argv, start_new_session=True, preexec_fn=pre, **kw)
        self.items.append((name, p))
        return p

    def stop(self, name: str, *, sig: int = signal.SIGTERM, wait: float = 5.0) -> None:
        for n, p in list(self.items):
            if n != name:
                continue
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)
                try:
                    p.wait(wait)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(p.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(5)
            self.items.remove((n, p))

    def stop_all(self) -> None:
        for name, _ in reversed(list(self.items)):
            self.stop(name, sig=signal.SIGKILL if name == "sipp" else signal.SIGTERM)


def free_port(kind: int = socket.SOCK_DGRAM, also_tcp: bool = False) -> int:
    """A port free for UDP (and TCP) on 127.0.0.1, below the ephemeral range."""
    for _ in range(200):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        try:
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind((HOST, port))
            if also_tcp:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((HOST, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")


def free_udp_range(size: int, avoid: set[int]) -> int:
    """Start of an even port range [start, start+size) where every UDP port binds now."""
    for _ in range(200):
        start = (20000 + int.from_bytes(os.urandom(2), "big") % (12000 - size)) & ~1
        if any(start <= a < start + size for a in avoid):
            continue
        socks = []
        try:
            for p in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((HOST, p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return start
    raise RuntimeError(f"no free UDP range of {size} ports found")


# ----------------------------------------------------------------------------------------
# /proc readings
# ----------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def steal_seconds() -> float:
    """CPU time the hypervisor took from this VM (all CPUs), seconds (/proc/stat steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / CLK_TCK if len(fields) > 8 else 0.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def udp_drops(lo: int, hi: int) -> int:
    """Sum of the kernel's receive drops over UDP sockets bound to ports [lo, hi]."""
    total = 0
    with contextlib.suppress(OSError), open("/proc/net/udp") as f:
        next(f)
        for line in f:
            parts = line.split()
            port = int(parts[1].split(":")[1], 16)
            if lo <= port <= hi:
                total += int(parts[-1])
    return total


# ----------------------------------------------------------------------------------------
# pcap reading (libpcap format written by dumpcap -P)
# ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Pkt:
    t: float
    seq: int
    ts: int
    payload: bytes


_DELTA = re.compile(rb'"delta": ?"([A-Za-z0-9+/=]*)"')


@dataclass
class Capture:
    """What the capture holds, keyed by gateway RTP port / fake WebSocket connection."""

    out: dict[int, list[Pkt]] = field(default_factory=lambda: defaultdict(list))
    inn: dict[int, list[Pkt]] = field(default_factory=lambda: defaultdict(list))
    #: fake AI -> gateway audio deltas per gateway-side TCP port: (time, decoded bytes)
    ai_out: dict[int, list[tuple[float, bytes]]] = field(
        default_factory=lambda: defaultdict(list))
    #: time of the fake's SYN-ACK per gateway-side TCP port (connection order)
    ai_syn: dict[int, float] = field(default_factory=dict)


def read_pcap(path: Path, lo: int, hi: int, ai_port: int = 0) -> Capture:
    """RTP packets of the gateway port range, split by direction and keyed by gateway port,
    plus (when ``ai_port`` is given) the fake AI's audio deltas per WebSocket connection.

    ``out[p]``: packets sent from gateway port p (gateway -> sipp); ``inn[p]``: packets
    sent to gateway port p (sipp -> gateway). RTCP (odd ports, PT 200-204) is skipped.
    """
    import base64

    cap = Capture()
    out, inn = cap.out, cap.inn
    data = path.read_bytes()
    if len(data) < 24:
        return cap
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian, nano = "<", False
    elif magic == b"\x4d\x3c\xb2\xa1":
        endian, nano = "<", True
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian, nano = ">", False
    elif magic == b"\xa1\xb2\x3c\x4d":
        endian, nano = ">", True
    else:
        raise RuntimeError(f"{path}: not a libpcap file (pcapng? use dumpcap -P)")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    l2 = {1: 14, 0: 4, 113: 16, 276: 20, 101: 0, 12: 0}.get(linktype)
    if l2 is None:
        raise RuntimeError(f"{path}: unsupported link type {linktype}")
    rec = struct.Struct(endian + "IIII")
    div = 1e9 if nano else 1e6
    off = 24
    n = len(data)
    while off + 16 <= n:
        sec, frac, incl, _orig = rec.unpack_from(data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        ip = l2
        if len(pkt) < ip + 28 or (pkt[ip] >> 4) != 4:
            continue
        ihl = (pkt[ip] & 0x0F) * 4
        u = ip + ihl
        if pkt[ip + 9] == 6 and ai_port and len(pkt) >= u + 20:
            sport, dport = struct.unpack_from("!HH", pkt, u)
            if sport != ai_port:
                continue
            t = sec + frac / div
            flags = pkt[u + 13]
            if flags & 0x12 == 0x12:  # SYN-ACK: a new connection from the gateway
                cap.ai_syn.setdefault(dport, t)
            body = pkt[u + (pkt[u + 12] >> 4) * 4:]
            if b'"delta"' in body:
                for m in _DELTA.finditer(body):
                    with contextlib.suppress(ValueError):
                        cap.ai_out[dport].append((t, base64.b64decode(m.group(1))))
            continue
        if len(pkt) < ip + 28 or pkt[ip + 9] != 17:
            continue
        sport, dport = struct.unpack_from("!HH", pkt, u)
        r = u + 8
        if len(pkt) < r + 12 or (pkt[r] >> 6) != 2:
            continue
        pt = pkt[r + 1] & 0x7F
        if 72 <= pt <= 76:  # RTCP SR/RR/SDES/BYE/APP (RFC 5761)
            continue
        cc = pkt[r] & 0x0F
        hdr = 12 + 4 * cc
        if pkt[r] & 0x10 and len(pkt) >= r + hdr + 4:
            hdr += 4 + 4 * struct.unpack_from("!H", pkt, r + hdr + 2)[0]
        seq, ts = struct.unpack_from("!HI", pkt, r + 2)
        p = Pkt(sec + frac / div, seq, ts, bytes(pkt[r + hdr:]))
        if lo <= sport <= hi and not sport & 1:
            out[sport].append(p)
        elif lo <= dport <= hi and not dport & 1:
            inn[dport].append(p)
    return cap


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100.0 * (len(s) - 1))))
    return s[k]


@dataclass
class SeqStats:
    packets: int = 0
    gaps: int = 0  # packets missing by sequence number
    missed_ticks: int = 0  # RTP timestamp advanced by more than one frame (no packet sent)
    dups: int = 0
    reorders: int = 0


def seq_stats(pkts: list[Pkt]) -> SeqStats:
    st = SeqStats(packets=len(pkts))
    for a, b in itertools.pairwise(pkts):
        d = (b.seq - a.seq) & 0xFFFF
        if d == 0:
            st.dups += 1
        elif d < 3000:
            st.gaps += d - 1
            dts = (b.ts - a.ts) & 0xFFFFFFFF
            if d == 1 and dts > FRAME and dts % FRAME == 0 and dts < FRAME * 3000:
                st.missed_ticks += dts // FRAME - 1
        else:
            st.reorders += 1
    return st


@dataclass
class Result:
    n: int
    up: int = 0
    streams_audio: int = 0
    cpu_pct_call: float = float("nan")
    cpu_pct_total: float = float("nan")
    rss_mb_call: float = float("nan")
    rss_base: float = float("nan")
    rss_window: float = float("nan")
    jit_p50: float = float("nan")
    jit_p99: float = float("nan")
    jit_max: float = float("nan")
    #: share of CPU time the hypervisor stole during the window (noisy neighbours), %
    steal_pct: float = float("nan")
    sipp_jit_p99: float = float("nan")
    lost_out: int = 0  # gateway -> sipp: sequence gaps + missed ticks
    lost_out_detail: str = ""
    lost_in: int = 0  # sipp -> gateway: sipp frames never forwarded (echoed) back
    lost_in_detail: str = ""
    rtt_p50: float = float("nan")
    rtt_p99: float = float("nan")
    rtt_n: int = 0
    rtt_split: str = ""
    ramp: str = ""
    slip_ms: float = 0.0
    window_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    ok: bool = False


def ai_pairing(cap: Capture, unique_frames: set[bytes]) -> dict[int, dict[bytes, list[float]]]:
    """Gateway RTP port -> {frame: times the fake AI sent it back} of that call's
    WebSocket connection.

    Calls are set up one after another, so the i-th connection (by SYN-ACK time) belongs
    to the call whose RTP started i-th; a pairing is kept only if that connection really
    echoed (before the gateway sent them on) >= 90% of the frames sampled from the port.
    """
    conns = sorted(cap.ai_syn, key=cap.ai_syn.__getitem__)
    ports = sorted((p for p in cap.inn if cap.inn[p]), key=lambda p: cap.inn[p][0].t)
    paired: dict[int, dict[bytes, list[float]]] = {}
    for port, conn in zip(ports, conns, strict=False):
        echoes: dict[bytes, list[float]] = defaultdict(list)
        for t, chunk in cap.ai_out.get(conn, []):
            for i in range(0, len(chunk) - FRAME + 1, FRAME):
                f = chunk[i:i + FRAME]
                if f in unique_frames:
                    echoes[f].append(t)
        sample = [p for p in cap.out.get(port, []) if p.payload in unique_frames][-200:]
        hits = 0
        for p in sample:
            times = echoes.get(p.payload, [])
            i = bisect.bisect_right(times, p.t) - 1
            hits += i >= 0 and p.t - times[i] < 2.0
        if sample and hits >= 0.9 * len(sample):
            paired[port] = echoes
    return paired


def analyse(res: Result, pcap: Path, lo: int, hi: int, t0: float, t1: float,
            unique_frames: set[bytes], silence: bytes, ai_port: int = 0) -> None:
    cap = read_pcap(pcap, lo, hi, ai_port)
    out, inn = cap.out, cap.inn
    paired = ai_pairing(cap, unique_frames) if ai_port else {}
    rtt_in: list[float] = []
    rtt_out: list[float] = []
    jitter: list[float] = []
    ramp_jitter: list[float] = []
    ramp_missed = 0
    slips: list[float] = []
    sipp_jitter: list[float] = []
    rtts: list[float] = []
    sent_ok = 0
    not_echoed = 0
    out_st = SeqStats()
    in_st = SeqStats()
    streams_audio = 0
    for port in sorted(set(out) | set(inn)):
        ow = [p for p in out.get(port, []) if t0 <= p.t <= t1]
        iw_all = inn.get(port, [])
        iw = [p for p in iw_all if t0 <= p.t <= t1]
        if not ow and not iw:
            continue
        s = seq_stats(ow)
        out_st.packets += s.packets
        out_st.gaps += s.gaps
        out_st.missed_ticks += s.missed_ticks
        out_st.dups += s.dups
        out_st.reorders += s.reorders
        s = seq_stats(iw)
        in_st.packets += s.packets
        in_st.gaps += s.gaps
        in_st.dups += s.dups
        in_st.reorders += s.reorders
        jitter += [abs((b.t - a.t) * 1000.0 - 20.0) for a, b in itertools.pairwise(ow)]
        before = [p for p in out.get(port, []) if p.t < t0]  # call set-up (ramp) + settle
        ramp_jitter += [abs((b.t - a.t) * 1000.0 - 20.0) for a, b in itertools.pairwise(before)]
        ramp_missed += seq_stats(before).missed_ticks
        if len(ow) > 1:  # wall time elapsed minus media time sent: skipped clock ticks
            media = ((ow[-1].ts - ow[0].ts) & 0xFFFFFFFF) / 8000.0
            slips.append(((ow[-1].t - ow[0].t) - media) * 1000.0)
        sipp_jitter += [abs((b.t - a.t) * 1000.0 - 20.0) for a, b in itertools.pairwise(iw)]
        if any(p.payload != silence for p in ow):
            streams_audio += 1
        # Round trip: sipp frame -> gateway -> fake AI (echo) -> gateway -> sipp, matched
        # on the 160-byte payload (unique within the looped recording).
        sent: dict[bytes, list[float]] = defaultdict(list)
        for p in iw_all:
            if p.t <= t1 and p.payload in unique_frames:
                sent[p.payload].append(p.t)
        back: dict[bytes, list[float]] = defaultdict(list)
        for p in out.get(port, []):
            if p.t >= t0 - 2.0 and p.payload in unique_frames:
                back[p.payload].append(p.t)
        for p in ow:
            times = sent.get(p.payload)
            if not times:
                continue
            i = bisect.bisect_right(times, p.t) - 1
            if i >= 0 and p.t - times[i] < 5.0:
                rtts.append((p.t - times[i]) * 1000.0)
                echoes = paired.get(port, {}).get(p.payload)
                if echoes:
                    j = bisect.bisect_right(echoes, p.t) - 1
                    if j >= 0 and echoes[j] >= times[i]:
                        rtt_in.append((echoes[j] - times[i]) * 1000.0)
                        rtt_out.append((p.t - echoes[j]) * 1000.0)
        # Forwarding loss: sipp frames of the window (minus the last 2 s, still in
        # flight) that never came back from the gateway within 2 s.
        for p in iw:
            if p.t > t1 - 2.0 or p.payload not in unique_frames:
                continue
            times = back.get(p.payload, [])
            i = bisect.bisect_left(times, p.t)
            if i < len(times) and times[i] - p.t < 2.0:
                sent_ok += 1
            else:
                not_echoed += 1
    res.streams_audio = streams_audio
    res.jit_p50, res.jit_p99 = pct(jitter, 50), pct(jitter, 99)
    res.jit_max = max(jitter) if jitter else float("nan")
    res.sipp_jit_p99 = pct(sipp_jitter, 99)
    if ramp_jitter:
        res.ramp = (f"before the window (calls being set up at -r, then settle): send jitter "
                    f"p99 {pct(ramp_jitter, 99):.2f} ms, max {max(ramp_jitter):.1f} ms, "
                    f"{ramp_missed} missed ticks")
    res.rtt_p50, res.rtt_p99, res.rtt_n = pct(rtts, 50), pct(rtts, 99), len(rtts)
    if rtt_in:
        res.rtt_split = (f"RTT split over {len(paired)} calls paired with their AI socket: "
                         f"sipp -> gateway -> fake AI echo p50/p99 {pct(rtt_in, 50):.1f}/"
                         f"{pct(rtt_in, 99):.1f} ms; fake AI echo -> gateway -> sipp p50/p99 "
                         f"{pct(rtt_out, 50):.1f}/{pct(rtt_out, 99):.1f} ms")
    res.slip_ms = max(slips) if slips else 0.0
    res.lost_out = out_st.gaps + out_st.missed_ticks
    res.lost_out_detail = (f"gw->sipp: {out_st.packets} pkts, {out_st.gaps} seq gaps, "
                           f"{out_st.missed_ticks} missed ticks (ts jump), {out_st.dups} dups, "
                           f"{out_st.reorders} reorders, clock slip max {res.slip_ms:.0f} ms "
                           "(wall time - RTP time; skipped media-clock ticks)")
    res.lost_in = not_echoed
    res.lost_in_detail = (f"sipp->gw: {in_st.packets} pkts, {in_st.gaps} seq gaps (sipp side), "
                          f"{sent_ok + not_echoed} checked frames, {not_echoed} never echoed back")


# ----------------------------------------------------------------------------------------
# One load point
# ----------------------------------------------------------------------------------------
def prepare_audio(tmp: Path, wav: str) -> tuple[Path, set[bytes], bytes]:
    raw = tmp / "speech.ul"
    subprocess.run(["sox", "-D", wav, "-t", "raw", "-r", "8000", "-c", "1", "-e", "mu-law",
                    "-b", "8",
                    str(raw)], check=True, capture_output=True, timeout=60)
    data = raw.read_bytes()
    data += b"\xff" * (-len(data) % FRAME)  # whole 20 ms frames, so loops stay aligned
    raw.write_bytes(data)
    frames = [data[i:i + FRAME] for i in range(0, len(data), FRAME)]
    counts = Counter(frames)
    unique = {f for f in frames if counts[f] == 1 and len(set(f)) > 4}
    return raw, unique, b"\xff" * FRAME


def wait_until(cond, timeout: float, step: float = 0.1, alive=None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        if alive is not None and not alive():
            return False
        time.sleep(step)
    return bool(cond())


def run_point(n: int, args, base: Path, audio: Path, unique: set[bytes], silence: bytes,
              procs: Procs) -> Result:
    res = Result(n)
    tmp = base / f"n{n}"
    tmp.mkdir()
    shutil.copy(audio, tmp / "speech.ul")
    shutil.copy(SCENARIO, tmp / SCENARIO.name)
    ncpu = os.cpu_count() or 1
    gw_cpus = {0} if args.pin and ncpu >= 2 else None
    load_cpus = set(range(1, ncpu)) if args.pin and ncpu >= 2 else None
    with contextlib.suppress(OSError):
        if load_cpus:
            os.sched_setaffinity(0, load_cpus)

    # fake OpenAI
    fake_out = open(tmp / "fake.out", "w+")
    fake_err = open(tmp / "fake.err", "w")
    fake = procs.start("fake", [sys.executable, __file__, "--_fake-ai",
                                "--echo-turn-ms", str(args.echo_turn_ms)],
                       cpus=load_cpus, stdout=fake_out, stderr=fake_err, cwd=tmp)

    def fake_port() -> int | None:
        fake_out.seek(0)
        txt = fake_out.read().strip()
        return int(txt) if txt.isdigit() else None

    if not wait_until(lambda: fake_port() is not None, 30, alive=lambda: fake.poll() is None):
        raise RuntimeError(f"fake OpenAI server did not start; see {tmp / 'fake.err'}")
    fport = fake_port()

    # gateway
    http_port = free_port(socket.SOCK_STREAM)
    sip_port = free_port(also_tcp=True)
    sipp_port = free_port()
    rtp_size = max(200, 4 * n + 100)
    sipp_mp = free_udp_range(64, {http_port, sip_port, sipp_port})
    rtp_lo = free_udp_range(rtp_size, {http_port, sip_port, sipp_port}
                            | set(range(sipp_mp, sipp_mp + 64)))
    rtp_hi = rtp_lo + rtp_size - 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("VGW_")}
    env.update({
        "VGW_HTTP_HOST": HOST, "VGW_HTTP_PORT": str(http_port),
        "VGW_SIP_HOST": HOST, "VGW_SIP_PORT": str(sip_port),
        "VGW_RTP_PORT_MIN": str(rtp_lo), "VGW_RTP_PORT_MAX": str(rtp_hi),
        "VGW_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
        "VGW_ACCOUNT_ID": "1", "VGW_API_KEY": "bench",
        "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": f"http://{HOST}:{fport}/v1",
        "VGW_LOG_LEVEL": args.gw_log_level,
        "VGW_SESSION_IDLE_TIMEOUT": "600",
    })
    vgw = Path(sys.executable).parent / "vgw"
    argv = [str(vgw), "serve"] if vgw.exists() else (
        [shutil.which("vgw"), "serve"] if shutil.which("vgw") else
        [sys.executable, "-m", "gateway.cli", "serve"])
    gw_out = open(tmp / "gw.out", "w")
    gw_err = open(tmp / "gw.err", "w")
    gw = procs.start("gateway", argv, cpus=gw_cpus, env=env, cwd=tmp, stdout=gw_out,
                     stderr=gw_err)

    def health() -> bool:
        try:
            with socket.create_connection((HOST, http_port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
                return b" 200 " in s.recv(200)
        except OSError:
            return False

    if not wait_until(health, 60, 0.2, alive=lambda: gw.poll() is None):
        raise RuntimeError(f"gateway did not come up; see {tmp / 'gw.err'}")
    time.sleep(1.0)
    res.rss_base = rss_mb(gw.pid)

    # capture
    pcap = tmp / "rtp.pcap"
    dc_err = open(tmp / "dumpcap.err", "w")
    procs.start("dumpcap", ["dumpcap", "-i", "lo", "-f",
                            f"(udp and portrange {rtp_lo}-{rtp_hi}) or (tcp and src port {fport})",
                            "-P", "-B", "128",
                            "-w", str(pcap)], cpus=load_cpus,
                stdout=subprocess.DEVNULL, stderr=dc_err)
    if not wait_until(lambda: pcap.exists() and pcap.stat().st_size >= 24, 15, alive=lambda:
                      procs.items and procs.items[-1][1].poll() is None):
        raise RuntimeError(f"dumpcap did not start; see {tmp / 'dumpcap.err'}")
    time.sleep(0.5)

    # sipp
    ramp = n / args.rate
    hold_ms = int((ramp + args.settle + args.duration + 30 + n / 20) * 1000)
    sipp_out = open(tmp / "sipp.out", "w")
    sipp = procs.start("sipp", [
        "sipp", f"{HOST}:{sip_port}", "-sf", SCENARIO.name, "-s", "agent",
        "-i", HOST, "-p", str(sipp_port), "-mi", HOST, "-mp", str(sipp_mp),
        "-l", str(n), "-m", str(n), "-r", str(args.rate), "-d", str(hold_ms),
        "-nostdin", "-trace_logs", "-trace_err", "-timeout", str(int(hold_ms / 1000) + 60),
    ], cpus=load_cpus, cwd=tmp, stdout=sipp_out, stderr=subprocess.STDOUT)

    def ups() -> int:
        total = 0
        for path in glob.glob(str(tmp / "*_logs.log")):
            with open(path, errors="replace") as f:
                total += sum(1 for line in f if line.startswith("UP "))
        return total

    all_up = wait_until(lambda: ups() >= n, ramp + 30 + n / 10, 0.25,
                        alive=lambda: sipp.poll() is None)
    res.up = ups()
    if not all_up:
        res.notes.append(f"only {res.up}/{n} calls answered within the wait "
                         "(sipp " + (f"exited rc={sipp.poll()}" if sipp.poll() is not None
                                     else "running") + ")")
    # settle: AI connections, jitter buffers, first echoes
    time.sleep(args.settle)
    if sipp.poll() is not None:
        res.notes.append(f"sipp exited early rc={sipp.poll()}")

    # measurement window
    drops0 = udp_drops(rtp_lo, rtp_hi)
    sdrops0 = udp_drops(sipp_mp, sipp_mp + 63)
    c0, t0, st0 = cpu_seconds(gw.pid), time.time(), steal_seconds()
    m0 = time.monotonic()
    rss_samples = []
    while time.monotonic() - m0 < args.duration:
        rss_samples.append(rss_mb(gw.pid))
        time.sleep(min(0.5, max(0.0, args.duration - (time.monotonic() - m0))))
        if gw.poll() is not None:
            res.notes.append(f"gateway exited during the window rc={gw.poll()}")
            break
    c1, t1 = cpu_seconds(gw.pid) if gw.poll() is None else c0, time.time()
    res.steal_pct = (steal_seconds() - st0) / max(t1 - t0, 1e-9) / (os.cpu_count() or 1) * 100
    rss_samples.append(rss_mb(gw.pid) if gw.poll() is None else 0.0)
    drops = udp_drops(rtp_lo, rtp_hi) - drops0
    sdrops = udp_drops(sipp_mp, sipp_mp + 63) - sdrops0
    if sipp.poll() is not None:
        res.notes.append(f"sipp exited during the window rc={sipp.poll()}")
    time.sleep(2.5)  # let the last frames of the window come back (forwarding check)

    # stop: capture first, then the load (no BYE: SIPp #699), then gateway and fake
    procs.stop("dumpcap", sig=signal.SIGTERM, wait=10)
    procs.stop("sipp", sig=signal.SIGKILL)
    procs.stop("gateway", sig=signal.SIGTERM, wait=8)
    procs.stop("fake", sig=signal.SIGTERM)
    for f in (fake_out, fake_err, gw_out, gw_err, dc_err, sipp_out):
        f.close()

    res.window_s = t1 - t0
    res.cpu_pct_total = (c1 - c0) / res.window_s * 100.0
    res.cpu_pct_call = res.cpu_pct_total / n
    res.rss_window = max(rss_samples)
    res.rss_mb_call = (statistics.median(rss_samples) - res.rss_base) / n
    if drops:
        res.notes.append(f"kernel UDP receive drops on gateway RTP sockets: {drops}")
    if sdrops and args.verbose:
        res.notes.append(f"kernel UDP receive drops on sipp RTP sockets: {sdrops} (sipp's "
                         "rtp_stream does not read what it receives: expected)")
    dc_txt = (tmp / "dumpcap.err").read_text(errors="replace")
    m = re.search(r"Packets received/dropped on interface.*?:\s*(\d+)/(\d+)", dc_txt)
    if m and int(m.group(2)):
        res.notes.append(f"dumpcap dropped {m.group(2)} packets (loss figures unreliable)")
    analyse(res, pcap, rtp_lo, rtp_hi, t0, t1, unique, silence, fport)

    # gateway log
    log = (tmp / "gw.err").read_text(errors="replace").splitlines()
    bad = [ln for ln in log if re.search(r"\b(ERROR|CRITICAL|Traceback)\b", ln)]
    warn = [ln for ln in log if " WARNING " in ln]
    if bad or warn:
        res.notes.append(f"gateway log: {len(bad)} error lines, {len(warn)} warnings "
                         f"({tmp / 'gw.err'})")
        for ln in (bad + warn)[:4]:
            res.notes.append("  " + ln[:200])
    if not args.pin:
        res.notes.append("no CPU pinning")
    res.ok = (res.up == n and res.streams_audio == n and res.jit_p99 <= args.jitter_target
              and res.lost_out == 0 and res.lost_in == 0)
    return res


# ----------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------
HEADER = ("    N | up/audio | CPU %/call | RSS MB/call | jitter p50/p99 ms | lost gw->sipp "
          "| lost sipp->gw | RTT added p50/p99 ms | ok")


def row(r: Result) -> str:
    return (f"{r.n:5d} | {r.up:3d}/{r.streams_audio:<4d} | {r.cpu_pct_call:10.2f} | "
            f"{r.rss_mb_call:11.3f} | {r.jit_p50:7.2f} / {r.jit_p99:6.2f} | "
            f"{r.lost_out:13d} | {r.lost_in:13d} | {r.rtt_p50:8.1f} / {r.rtt_p99:7.1f} | "
            f"{'yes' if r.ok else 'NO'}")


def details(r: Result) -> list[str]:
    out = [f"  N={r.n}: window {r.window_s:.1f} s, gateway CPU {r.cpu_pct_total:.1f}% of a core, "
           f"RSS {r.rss_base:.1f} -> {r.rss_window:.1f} MB, jitter max {r.jit_max:.2f} ms, "
           f"sipp send jitter p99 {r.sipp_jit_p99:.2f} ms, {r.rtt_n} RTT samples, "
           f"CPU steal {r.steal_pct:.1f}%",
           f"    {r.lost_out_detail}", f"    {r.lost_in_detail}"]
    if r.rtt_split:
        out.append(f"    {r.rtt_split}")
    if r.ramp:
        out.append(f"    {r.ramp}")
    out += [f"    note: {n}" for n in r.notes]
    return out


def print_table(results: list[Result], jitter_target: float) -> None:
    print()
    print(HEADER)
    print("-" * len(HEADER))
    for r in results:
        print(row(r))
    print()
    for r in results:
        for line in details(r):
            print(line)
    target = [r for r in results if r.n >= TARGET_CALLS]
    met = any(r.ok for r in target)
    print()
    if target:
        print(f"target ({TARGET_CALLS} concurrent bridged calls, RTP send jitter p99 <= "
              f"{jitter_target:g} ms, no loss): {'MET' if met else 'NOT MET'}")
    else:
        print(f"target ({TARGET_CALLS} calls) not measured in this run")
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, nargs="+", default=[10, 50, 100],
                    help="concurrent call counts to measure (default 10 50 100)")
    ap.add_argument("--duration", type=float, default=20.0, help="measurement window, s")
    ap.add_argument("--settle", type=float, default=4.0,
                    help="wait after the last call is up before the window, s")
    ap.add_argument("--rate", type=float, default=25.0, help="sipp call rate (-r), calls/s")
    ap.add_argument("--search", action="store_true",
                    help="then step N up from --search-start until the target fails")
    ap.add_argument("--search-start", type=int, default=150)
    ap.add_argument("--search-step", type=int, default=50)
    ap.add_argument("--search-max", type=int, default=600)
    ap.add_argument("--jitter-target", type=float, default=JITTER_TARGET_MS)
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin the gateway to CPU 0 and the load (sipp, fake, dumpcap) "
                         "to the other CPUs")
    ap.add_argument("--echo-turn-ms", type=float, default=1000.0,
                    help="the fake closes its echo response after this much audio")
    ap.add_argument("--gw-log-level", default="WARNING")
    ap.add_argument("--wav", default=DEFAULT_WAV, help="speech recording looped by each caller")
    ap.add_argument("--verbose", action="store_true", help="more notes per load point")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, pcaps)")
    ap.add_argument("--_fake-ai", dest="fake_ai", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.fake_ai:
        run_fake_ai(args.echo_turn_ms)
        return 0
    for tool in ("sipp", "dumpcap", "sox"):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2

    procs = Procs()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    base = Path(tempfile.mkdtemp(prefix="vgw-bench-"))
    print(f"temp dir: {base}  (CPUs: {os.cpu_count()}, pinning: "
          f"{'gateway on CPU 0, load on the rest' if args.pin else 'off'})", flush=True)
    results: list[Result] = []
    rc = 0
    try:
        audio, unique, silence = prepare_audio(base, args.wav)
        plan = list(args.calls)
        for n in plan:
            print(f"--- N={n}: starting ...", flush=True)
            t = time.monotonic()
            r = run_point(n, args, base, audio, unique, silence, procs)
            results.append(r)
            print(HEADER + "\n" + row(r), flush=True)
            for line in details(r):
                print(line, flush=True)
            print(f"    ({time.monotonic() - t:.0f} s)", flush=True)
        if args.search:
            best = max([r.n for r in results if r.ok], default=0)
            n = max(args.search_start, best + args.search_step)
            while n <= args.search_max:
                print(f"--- search N={n}: starting ...", flush=True)
                r = run_point(n, args, base, audio, unique, silence, procs)
                results.append(r)
                print(HEADER + "\n" + row(r), flush=True)
                for line in details(r):
                    print(line, flush=True)
                if not r.ok:
                    break
                best = n
                n += args.search_step
            print(f"\nsearch: highest N meeting jitter p99 <= {args.jitter_target:g} ms and no "
                  f"loss: {best if best else 'none'}"
                  f"{' (search max reached)' if n > args.search_max else ''}")
        print_table(results, args.jitter_target)
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); cleaning up", file=sys.stderr)
        rc = 130
    except Exception as exc:
        print(f"bench failed: {exc!r}", file=sys.stderr)
        rc = 1
        args.keep = True
    finally:
        procs.stop_all()
        if args.keep or rc:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
