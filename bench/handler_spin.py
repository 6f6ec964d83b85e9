#!/usr/bin/env python3
"""Handler watchdog bench: how long do other calls' RTP streams stall while one
session's handler spins on the shared event loop?

    python bench/handler_spin.py [--calls 5] [--limit 1.0] [--spins 1] [--keep]

It runs the gateway in-process (``gateway.server.Gateway`` on uvloop when installed, the
way ``vgw serve`` does) with two rules: ``echo`` answers an inbound call and routes its
audio back to itself (``call.send_media_to(call)``), ``spin`` (started with
StartScenarios) runs a handler that loops forever. Then, each in its own process group
under one temp dir:

* dumpcap on ``lo`` captures the gateway's RTP port range (libpcap file);
* sipp places ``--calls`` calls with ``bench/sipp/uac_pcmu_stream.xml`` (PCMU, a human
  recording looped as 20 ms RTP), all echoed by the gateway.

Once every call is up and has settled, the bench captures ``--baseline`` seconds, starts
``--spins`` spinning sessions one after another (each interrupted by the watchdog after
``--limit`` s) and captures ``--after`` seconds more. It then reads the gateway -> sipp
RTP of every call from the capture (bench/sip_bridge.py's pcap reader) and prints, for
the baseline window and for the spin windows: the worst inter-packet gap, the send
jitter (|gap - 20 ms|) p99 and max, and the packets missing by RTP timestamp (ticks the
media clock skipped while the loop was held). Needs sipp, dumpcap (run as root or with
capture rights on lo) and sox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from sip_bridge import (  # noqa: E402
    DEFAULT_WAV,
    FRAME,
    HOST,
    SCENARIO,
    free_port,
    free_udp_range,
    pct,
    prepare_audio,
    read_pcap,
)

API_KEY = "bench"

ECHO = """
def on_alert(e):
    call = e.call
    call.add_event_listener(CallEvents.Connected, lambda ev: call.send_media_to(call))
    call.answer()
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""

SPIN = """
import time
def spin():
    Logger.write("spin starts")
    n = 0
    while True:
        n += 1
VoxEngine.add_event_listener(AppEvents.Started, lambda e: set_timeout(spin, 0))
"""


@dataclass
class Window:
    name: str
    gaps: list[float] = field(default_factory=list)  # ms between consecutive packets
    skipped: int = 0  # 20 ms ticks with no packet (RTP timestamp jumps)
    packets: int = 0
    #: per stream: wall time elapsed minus RTP time sent over the window, ms (ticks the
    #: media clock skipped advance neither the sequence number nor the timestamp)
    slips: list[float] = field(default_factory=list)

    def line(self) -> str:
        if not self.gaps:
            return f"  {self.name}: no packets"
        jit = [abs(g - 20.0) for g in self.gaps]
        slip = max(self.slips, default=0.0)
        return (f"  {self.name}: {self.packets} pkts, worst gap {max(self.gaps):.1f} ms, "
                f"send jitter p99 {pct(jit, 99):.2f} ms / max {max(jit):.1f} ms, "
                f"{self.skipped} timestamp jumps, clock slip max {slip:.0f} ms")


class Children:
    """Subprocesses of the bench, each in its own process group; all stopped at the end."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], log: Path, **kw) -> subprocess.Popen:
        """Start ``argv`` with its stdout and stderr in the file ``log``."""
        with log.open("w") as out:
            p = subprocess.Popen(argv, start_new_session=True, stdout=out,
                                 stderr=subprocess.STDOUT, **kw)
        self.procs.append((name, p))
        return p

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        for n, p in list(self.procs):
            if n != name:
                continue
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
            self.procs.remove((n, p))

    def stop_all(self) -> None:
        for name, _ in reversed(list(self.procs)):
            self.stop(name, signal.SIGKILL if name == "sipp" else signal.SIGTERM)


async def until(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, tmp: Path, kids: Children) -> int:
    from gateway.server import Gateway
    from gateway.settings import Settings

    prepare_audio(tmp, args.wav)  # speech.ul, looped by sipp
    shutil.copy(SCENARIO, tmp / SCENARIO.name)
    http_port = free_port(socket.SOCK_STREAM)
    sip_port = free_port(also_tcp=True)
    sipp_port = free_port()
    size = max(100, 4 * args.calls + 40)
    sipp_mp = free_udp_range(64, {http_port, sip_port, sipp_port})
    rtp_lo = free_udp_range(size, {http_port, sip_port, sipp_port}
                            | set(range(sipp_mp, sipp_mp + 64)))
    rtp_hi = rtp_lo + size - 1
    settings = Settings(http_host=HOST, http_port=http_port, sip_host=HOST, sip_port=sip_port,
                        rtp_port_min=rtp_lo, rtp_port_max=rtp_hi,
                        database_url=f"sqlite:///{tmp / 'gw.db'}", logs_dir=str(tmp / "logs"),
                        account_id=1, api_key=API_KEY, bootstrap_inbound=False,
                        session_idle_timeout=600)
    gw = Gateway(settings)
    await gw.start()
    gw.runtime.handler_time_limit = args.limit
    try:
        async with httpx.AsyncClient(base_url=settings.http_base_url(), timeout=30) as http:
            async def api(cmd: str, **params) -> dict:
                data = {"account_id": "1", "api_key": API_KEY,
                        **{k: str(v) for k, v in params.items()}}
                body = (await http.post(f"/platform_api/{cmd}/", data=data)).json()
                if "error" in body:
                    raise RuntimeError(f"{cmd}: {body['error']}")
                return body

            app = (await api("AddApplication", application_name="bench"))["application_id"]
            echo = (await api("AddScenario", scenario_name="echo",
                              scenario_script=ECHO))["scenario_id"]
            spin = (await api("AddScenario", scenario_name="spin",
                              scenario_script=SPIN))["scenario_id"]
            await api("AddRule", application_id=app, rule_name="echo", rule_pattern="agent",
                      scenario_id=echo)
            spin_rule = (await api("AddRule", application_id=app, rule_name="spin",
                                   rule_pattern="spin-only", scenario_id=spin))["rule_id"]

            pcap = tmp / "rtp.pcap"
            kids.start("dumpcap", ["dumpcap", "-i", "lo", "-f",
                                   f"udp and portrange {rtp_lo}-{rtp_hi}", "-P", "-B", "64",
                                   "-w", str(pcap)], tmp / "dumpcap.log")
            await until(lambda: pcap.exists() and pcap.stat().st_size >= 24, 15, "dumpcap")
            await asyncio.sleep(0.5)

            hold_ms = int((args.settle + args.baseline + args.after
                           + args.spins * (args.limit + 3) + 60) * 1000)
            kids.start("sipp", [
                "sipp", f"{HOST}:{sip_port}", "-sf", SCENARIO.name, "-s", "agent", "-i", HOST,
                "-p", str(sipp_port), "-mi", HOST, "-mp", str(sipp_mp), "-l", str(args.calls),
                "-m", str(args.calls), "-r", "10", "-d", str(hold_ms), "-nostdin",
                "-trace_err"], tmp / "sipp.log", cwd=tmp)

            def connected() -> int:
                return sum(1 for s in gw.runtime.sessions.values() for c in s.calls
                           if c.state() == "CONNECTED")

            await until(lambda: connected() >= args.calls, 30 + args.calls, "every call up")
            await asyncio.sleep(args.settle)

            t0 = time.time()
            await asyncio.sleep(args.baseline)
            spins: list[tuple[float, float, str]] = []
            for _ in range(args.spins):
                a = time.time()
                started = await api("StartScenarios", rule_id=spin_rule)
                sid = started["media_session_access_url"].split("/sessions/")[1].split("/")[0]
                session = gw.runtime.find_session(sid)
                await session.wait_ended(args.limit * 5 + 10)
                b = time.time()
                lines = session.log_lines
                spins.append((a, b, next((ln for ln in lines if "HandlerTimeoutError" in ln
                                          and "error in" in ln), "no watchdog error?")))
                await asyncio.sleep(1.0)
            await asyncio.sleep(args.after)
            t1 = time.time()
            alive = connected()
            await asyncio.sleep(0.5)
            kids.stop("dumpcap")
            kids.stop("sipp", signal.SIGKILL)
    finally:
        await gw.stop()

    cap = read_pcap(pcap, rtp_lo, rtp_hi)
    base = Window(f"baseline ({args.baseline:g} s, no spin)")
    during = Window(f"spin windows ({args.spins} x spin, from StartScenarios to the "
                    "session's end + 1 s)")
    after = Window("after the last spin")
    spans = [(a, b + 1.0) for a, b, _ in spins]
    for pkts in cap.out.values():
        for w, lo, hi in ((base, t0, spans[0][0]), (during, spans[0][0], spans[-1][1]),
                          (after, spans[-1][1], t1)):
            inside = [p for p in pkts if lo <= p.t <= hi]
            if len(inside) > 1:
                media = ((inside[-1].ts - inside[0].ts) & 0xFFFFFFFF) / 8000.0
                w.slips.append(((inside[-1].t - inside[0].t) - media) * 1000.0)
        for p, q in itertools.pairwise(pkts):
            if q.t < t0 or p.t > t1:
                continue
            gap = (q.t - p.t) * 1000.0
            dts = (q.ts - p.ts) & 0xFFFFFFFF
            missed = dts // FRAME - 1 if dts > FRAME and dts % FRAME == 0 else 0
            if any(a <= q.t <= b for a, b in spans):
                w = during
            elif q.t < spans[0][0]:
                w = base
            else:
                w = after
            w.gaps.append(gap)
            w.packets += 1
            w.skipped += missed
    print(f"\nhandler watchdog bench: {args.calls} echoed sipp calls (PCMU, 20 ms), "
          f"watchdog limit {args.limit:g} s, {args.spins} spinning session(s); "
          f"{alive}/{args.calls} calls still up at the end")
    for a, b, line in spins:
        print(f"  spin session: StartScenarios -> session ended in {b - a:.2f} s; log: "
              f"{line.split(' ', 2)[-1][:150]}")
    for w in (base, during, after):
        print(w.line())
    worst = max(during.gaps, default=float("nan"))
    print(f"\nworst RTP inter-packet gap other calls saw while a handler spun: {worst:.1f} ms "
          f"(send jitter {worst - 20.0:.1f} ms)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=5, help="echoed sipp calls (5)")
    ap.add_argument("--limit", type=float, default=1.0, help="watchdog limit, s (1.0)")
    ap.add_argument("--spins", type=int, default=1, help="spinning sessions, one by one (1)")
    ap.add_argument("--settle", type=float, default=2.0, help="after all calls are up, s")
    ap.add_argument("--baseline", type=float, default=3.0, help="window before the spin, s")
    ap.add_argument("--after", type=float, default=3.0, help="window after the spins, s")
    ap.add_argument("--wav", default=DEFAULT_WAV, help="speech recording looped by sipp")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    for tool in ("sipp", "dumpcap", "sox"):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.CRITICAL)  # the spin's traceback is expected
    tmp = Path(tempfile.mkdtemp(prefix="vgw-spin-"))
    kids = Children()
    rc = 1
    try:
        try:
            import uvloop

            rc = uvloop.run(run(args, tmp, kids))
        except ImportError:
            rc = asyncio.run(run(args, tmp, kids))
    except KeyboardInterrupt:
        rc = 130
    finally:
        kids.stop_all()
        if args.keep or rc:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
