"""A conference of three real sipp legs: StartScenarios runs a scenario that creates a
conference with ``VoxEngine.create_conference()`` and dials three sipp callees
(tests/e2e/sipp/uas_rtp_stream.xml), each of which streams its own tone as PCMU RTP
(``rtp_stream``). Everything on the wire is captured with ``dumpcap`` on ``lo``; from the
capture, each callee's received audio must carry the other two tones and not its own
(energy shares of the spectrum, not timing). While they talk, no call reports
``CallEvents.PlaybackFinished``: the conference keeps each call's playout fed.

The first test's callees are UASs dialled by one session (a session's own conference,
VoxEngine's "local" one). The second test has three sipp *callers*
(tests/e2e/sipp/uac_rtp_stream.xml): every inbound call starts its own session, and the
sessions meet in the account's conference named "room"
(``VoxEngine.create_conference(name="room")``), with the same spectral checks.
"""

from __future__ import annotations

import asyncio
import json
import signal
import struct
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np

from gateway.media.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from gateway.settings import Settings
from tests.e2e.helpers import session_id_of, wait_until
from tests.integration.sip_harness import SCENARIOS, sipp, wait_sipp_listening
from tests.peers import peer_unavailable, require_binary

#: One tone per callee; no harmonic or intermodulation product (order <= 7) of two of
#: them comes within 100 Hz of the third, so G.711's nonlinearity cannot fake one.
FREQS = (500, 1240, 2360)
#: Mixing ticks (20 ms) to run with all three in the conference before hanging up.
TICKS_TOGETHER = 150

SCENARIO = """
import json
from gateway.runtime.conference import ConferenceEvents

state = {"conf": None, "added": [], "removed": [], "failed": [], "playback_finished": 0}

def playback_finished(ev):
    state["playback_finished"] += 1

def on_started(e):
    data = json.loads(VoxEngine.custom_data())
    conf = VoxEngine.create_conference()
    state["conf"] = conf
    conf.add_event_listener(ConferenceEvents.EndpointAdded,
                            lambda ev: state["added"].append((ev.call.id(), ev.direction)))
    conf.add_event_listener(ConferenceEvents.EndpointRemoved,
                            lambda ev: state["removed"].append(ev.call.id()))
    for dest in data["destinations"]:
        call = VoxEngine.call_sip(dest, "conference")
        call.add_event_listener(CallEvents.Connected,
                                lambda ev: VoxEngine.send_media_between(ev.call, conf))
        call.add_event_listener(CallEvents.PlaybackFinished, playback_finished)
        call.add_event_listener(CallEvents.Failed,
                                lambda ev: (state["failed"].append(ev.code), VoxEngine.terminate()))

def on_http(e):
    VoxEngine.terminate()
    return "bye"

VoxEngine.add_event_listener(AppEvents.Started, on_started)
VoxEngine.add_event_listener(AppEvents.HttpRequest, on_http)
"""


def tone_file(path: Path, freq: int) -> Path:
    """One second of a ``freq`` Hz sine as raw 8 kHz mu-law (a whole number of periods,
    so sipp's loop has no click; 8000 bytes = 50 packets)."""
    t = np.arange(8000) / 8000
    pcm = np.round(8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
    path.write_bytes(pcm16_to_ulaw(pcm))
    return path


def band_share(x: np.ndarray, freq: float, width: float = 40.0) -> float:
    """Share of ``x``'s spectral energy within ``freq`` +- ``width`` Hz (8 kHz, Hann)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 8000)
    return float(spec[(f > freq - width) & (f < freq + width)].sum() / (spec.sum() or 1.0))


# -- the capture ---------------------------------------------------------------------------
@asynccontextmanager
async def capture(path: Path, port_min: int, port_max: int) -> AsyncIterator[Path]:
    """``dumpcap`` on ``lo`` writing UDP to/from ports ``port_min``-``port_max`` (libpcap
    format) to ``path`` while the block runs; stopped (SIGTERM, then SIGKILL) at the end."""
    exe = require_binary("dumpcap")
    proc = await asyncio.create_subprocess_exec(
        exe, "-i", "lo", "-P", "-w", str(path), "-f", f"udp and portrange {port_min}-{port_max}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    drain: asyncio.Future[bytes] | None = None
    try:
        try:
            async with asyncio.timeout(10):
                while b"Capturing on" not in (line := await proc.stderr.readline()):
                    if not line:
                        raise EOFError
        except (TimeoutError, EOFError):
            proc.kill()
            rest = await proc.stderr.read()
            peer_unavailable(f"dumpcap could not capture on lo: "
                             f"{rest.decode(errors='replace')[-500:]}")
        drain = asyncio.ensure_future(proc.stderr.read())  # keep its stderr pipe flowing
        yield path
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            await drain


def rtp_flows(path: Path) -> dict[tuple[int, int], list[tuple[int, bytes]]]:
    """PCMU RTP in a libpcap file of Ethernet-framed IPv4/UDP (dumpcap on ``lo``):
    ``{(src port, dst port): [(sequence number, payload), ...]}``."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    assert linktype == 1, f"expected Ethernet frames on lo, got link type {linktype}"
    flows: dict[tuple[int, int], list[tuple[int, bytes]]] = defaultdict(list)
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, off + 8)[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 14 + 20 + 8 + 12 or pkt[12:14] != b"\x08\x00":
            continue
        ihl = (pkt[14] & 0x0F) * 4
        if pkt[23] != 17:  # UDP
            continue
        udp = 14 + ihl
        sport, dport = struct.unpack_from("!HH", pkt, udp)
        rtp = pkt[udp + 8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 0:  # RTP v2, PT 0 only
            continue
        cc = rtp[0] & 0x0F
        head = 12 + 4 * cc
        if rtp[0] & 0x10:  # header extension
            head += 4 + 4 * struct.unpack_from("!H", rtp, head + 2)[0]
        seq = struct.unpack_from("!H", rtp, 2)[0]
        flows[(sport, dport)].append((seq, rtp[head:]))
    return flows


def samples(packets: list[tuple[int, bytes]]) -> np.ndarray:
    """The packets' audio (8 kHz) in sequence order (sequence numbers unwrapped)."""
    out, last, base = [], None, 0
    for seq, payload in packets:
        if last is not None and seq < last and last - seq > 0x8000:
            base += 0x10000
        last = seq
        out.append((base + seq, payload))
    out.sort()
    pcm = ulaw_to_pcm16(b"".join(p for _, p in out))
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def assert_each_hears_the_others(pcap: Path, settings: Settings, tail: int = 10) -> None:
    """From the capture: each sipp leg (found by the tone it sends to the gateway) hears
    the other two tones and not its own, in the 2 s before its last ``tail`` packets
    (the final packets may already miss a leg that hung up first)."""
    flows = rtp_flows(pcap)
    gw_ports = range(settings.rtp_port_min, settings.rtp_port_max + 1)
    legs = {}  # sipp's RTP port -> (the tone it sent, what it received)
    for (src, dst), packets in flows.items():
        if src in gw_ports or dst not in gw_ports or len(packets) < 100:
            continue
        sent = samples(packets)
        own = max(FREQS, key=lambda f: band_share(sent, f))
        if band_share(sent, own) < 0.9:
            continue  # not one of our sipp legs (another test's traffic in the range)
        legs[src] = (own, flows.get((dst, src), []))
    assert sorted(own for own, _ in legs.values()) == sorted(FREQS), legs.keys()

    for own, received in legs.values():
        assert len(received) >= TICKS_TOGETHER, (own, len(received))
        x = samples(received)[-(100 + tail) * 160:-tail * 160]
        shares = {f: band_share(x, f) for f in FREQS}
        others = [f for f in FREQS if f != own]
        for f in others:
            assert shares[f] > 0.3, (own, shares)  # hears each of the other two
        assert shares[own] < 1e-3 * min(shares[f] for f in others), (own, shares)  # not itself


# -- the tests ---------------------------------------------------------------------------------
async def test_three_sipp_legs_each_hear_the_other_two_and_not_themselves(e2e, tmp_path):
    require_binary("sipp")
    settings = e2e.gw.settings
    rule_id = await e2e.rule_with("conference", SCENARIO, name="conference")
    template = (SCENARIOS / "uas_rtp_stream.xml").read_text()
    xmls = []
    for freq in FREQS:
        tone = tone_file(tmp_path / f"tone{freq}.ul", freq)
        xml = tmp_path / f"uas_{freq}.xml"
        xml.write_text(template.replace('rtp_stream="tone.ul,', f'rtp_stream="{tone},'))
        xmls.append(xml)

    async with capture(tmp_path / "rtp.pcap", settings.rtp_port_min,
                       settings.rtp_port_max) as pcap:
        async with sipp(tmp_path, "-sf", str(xmls[0])) as u1, \
                sipp(tmp_path, "-sf", str(xmls[1])) as u2, \
                sipp(tmp_path, "-sf", str(xmls[2])) as u3:
            uases = [u1, u2, u3]
            for uas in uases:
                await wait_sipp_listening(uas.port)
            data = {"destinations": [f"sip:tone{f}@127.0.0.1:{u.port}"
                                     for f, u in zip(FREQS, uases, strict=True)]}
            started = await e2e.ok("StartScenarios", rule_id=rule_id,
                                   script_custom_data=json.dumps(data))
            session = e2e.gw.runtime.find_session(session_id_of(
                started["media_session_access_url"]))
            state = session.namespace["state"]
            await wait_until(lambda: len(state["added"]) == 3 or state["failed"], 20,
                             "three endpoints in the conference")
            assert not state["failed"], state
            assert [d for _, d in state["added"]] == ["BOTH"] * 3
            conf = state["conf"]
            assert conf.sample_rate == 8000
            start = conf.ticks
            await wait_until(lambda: conf.ticks >= start + TICKS_TOGETHER, 20,
                             f"{TICKS_TOGETHER} mixing ticks with all three")
            # the conference feeds each call steadily: its playout never runs dry
            assert state["playback_finished"] == 0
            reply = await e2e.http.post(started["media_session_access_url"], content=b"end")
            assert reply.status_code == 200
            for uas in uases:  # each got our BYE and answered it
                assert await uas.wait(20) == 0, uas.logs()
        await session.wait_ended(10)
    assert sorted(state["removed"]) == sorted(c for c, _ in state["added"])

    assert_each_hears_the_others(pcap, settings)


#: Inbound: each caller's call starts its own session, whose scenario answers and joins the
#: account's conference named "room" (``create_conference(name=...)``); an HTTP request to
#: a session's access URL ends it (and hangs up its caller).
ROOM_SCENARIO = """
state = {"conf": None, "failed": [], "playback_finished": 0}

def playback_finished(ev):
    state["playback_finished"] += 1

def on_alerting(e):
    conf = VoxEngine.create_conference(name="room")
    state["conf"] = conf
    call = e.call
    call.add_event_listener(CallEvents.Connected,
                            lambda ev: VoxEngine.send_media_between(ev.call, conf))
    call.add_event_listener(CallEvents.PlaybackFinished, playback_finished)
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.add_event_listener(CallEvents.Failed,
                            lambda ev: (state["failed"].append(ev.code), VoxEngine.terminate()))
    call.answer()

def on_http(e):
    VoxEngine.terminate()
    return "bye"

VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alerting)
VoxEngine.add_event_listener(AppEvents.HttpRequest, on_http)
"""


async def test_three_sipp_callers_meet_in_a_named_conference(e2e, tmp_path):
    """Three sipp callers (tests/e2e/sipp/uac_rtp_stream.xml, one tone each) dial in; each
    inbound call is its own session, and all three join the conference named "room".
    Each caller hears the other two tones and not its own (from the dumpcap capture)."""
    require_binary("sipp")
    settings = e2e.gw.settings
    runtime = e2e.gw.runtime
    await e2e.rule_with("room", ROOM_SCENARIO, name="room")
    template = (SCENARIOS / "uac_rtp_stream.xml").read_text()
    xmls = []
    for freq in FREQS:
        tone = tone_file(tmp_path / f"tone{freq}.ul", freq)
        xml = tmp_path / f"uac_{freq}.xml"
        xml.write_text(template.replace('rtp_stream="tone.ul,', f'rtp_stream="{tone},'))
        xmls.append(xml)
    remote = f"127.0.0.1:{e2e.sip_port}"

    async with capture(tmp_path / "rtp.pcap", settings.rtp_port_min,
                       settings.rtp_port_max) as pcap:
        async with sipp(tmp_path, "-sf", str(xmls[0]), "-s", "room", remote=remote) as c1, \
                sipp(tmp_path, "-sf", str(xmls[1]), "-s", "room", remote=remote) as c2, \
                sipp(tmp_path, "-sf", str(xmls[2]), "-s", "room", remote=remote) as c3:
            callers = [c1, c2, c3]
            await wait_until(lambda: (conf := runtime.named_conference(1, "room")) is not None
                             and len(conf.get_list()) == 3, 20,
                             "three callers in the conference")
            sessions = list(runtime.sessions.values())
            assert len(sessions) == 3  # one session per caller ...
            conf = runtime.named_conference(1, "room")
            assert all(s.namespace["state"]["conf"] is conf for s in sessions)  # ... one room
            assert [ep.get_direction() for ep in conf.get_list()] == ["BOTH"] * 3
            assert runtime.named_conference(2, "room") is None  # not another account's
            start = conf.ticks
            await wait_until(lambda: conf.ticks >= start + TICKS_TOGETHER, 20,
                             f"{TICKS_TOGETHER} mixing ticks with all three")
            for s in sessions:
                assert s.namespace["state"]["failed"] == []
                assert s.namespace["state"]["playback_finished"] == 0
            replies = await asyncio.gather(*(e2e.http.post(s.access_url, content=b"end")
                                             for s in sessions))
            assert [r.status_code for r in replies] == [200] * 3
            for caller in callers:  # each got its session's BYE and answered it
                assert await caller.wait(20) == 0, caller.logs()
        for s in sessions:
            await s.wait_ended(10)
    assert not conf.active and runtime.named_conference(1, "room") is None

    assert_each_hears_the_others(pcap, settings, tail=25)
