"""B2BUA through real SIP legs: a sipp caller dials the gateway, whose scenario runs
``VoxEngine.forward_call_to_sip(call, "sip:callee@127.0.0.1:<port>")`` to a sipp callee.

- early media: the callee rings (180), sends 183 with SDP and its tone at once, answers
  1.5 s later; the caller gets 180 and 183 relayed and hears the callee's tone before it
  is answered (before it sends any RTP itself), then both hear each other's tone (each
  side streams its own frequency with ``rtp_stream``; everything on the wire is captured
  with ``dumpcap`` and checked by spectrum, not by timing); the caller's BYE ends both;
- the callee's BYE ends both; a busy callee's 486 reaches the caller as 486.
"""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path

import numpy as np

from gateway.media.g711 import ulaw_to_pcm16
from tests.e2e.helpers import wait_until
from tests.e2e.test_conference_e2e import band_share, capture, tone_file
from tests.integration.sip_harness import SCENARIOS, sipp, wait_sipp_listening
from tests.peers import require_binary

CALLER_HZ, CALLEE_HZ = 500, 1240

FORWARD = """
TARGET = "__TARGET__"
state = {"events": [], "established": 0}

def note(who):
    def handler(ev):
        state["events"].append((who, ev.name.split(".")[1], ev.code))
    return handler

def on_alert(e):
    def established(c1, c2):
        state["established"] += 1
    call2 = VoxEngine.forward_call_to_sip(e.call, TARGET, established)
    for who, call in (("c1", e.call), ("c2", call2)):
        for name in ("Ringing", "Connected", "Failed", "Disconnected"):
            call.add_event_listener(getattr(CallEvents, name), note(who))

VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""


def rendered(tmp_path: Path, xml: str, tone: Path) -> Path:
    """A copy of sipp scenario ``xml`` that streams ``tone`` (absolute path)."""
    out = tmp_path / f"{tone.stem}_{xml}"
    out.write_text((SCENARIOS / xml).read_text().replace(
        'rtp_stream="tone.ul,', f'rtp_stream="{tone},'))
    return out


def messages_log(run_dir: Path) -> str:
    """Everything sipp sent and received (its ``-trace_msg`` file), in full."""
    return "\n".join(f.read_text(errors="replace") for f in run_dir.glob("*_messages.log"))


def sdp_ports(log: str) -> list[int]:
    """The ``m=audio`` ports of every SDP in a sipp message log, in order."""
    return [int(m) for m in re.findall(r"(?m)^m=audio (\d+) ", log)]


def rtp_packets(path: Path) -> list[tuple[int, int, bytes]]:
    """PCMU RTP packets of a dumpcap capture on ``lo`` (Ethernet-framed IPv4/UDP), in
    capture order: ``(source port, destination port, payload)``."""
    data = path.read_bytes()
    endian = "<" if struct.unpack_from("<I", data)[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, off + 8)[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 54 or pkt[12:14] != b"\x08\x00" or pkt[23] != 17:
            continue
        udp = 14 + (pkt[14] & 0x0F) * 4
        sport, dport = struct.unpack_from("!HH", pkt, udp)
        rtp = pkt[udp + 8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 0 or rtp[0] & 0x1F:
            continue  # RTP v2, PT 0, no CSRC or extension (what both sides send)
        out.append((sport, dport, rtp[12:]))
    return out


def pcm(payloads: list[bytes]) -> np.ndarray:
    return np.frombuffer(ulaw_to_pcm16(b"".join(payloads)), dtype="<i2").astype(np.float64)


def carries(payload: bytes, freq: float) -> bool:
    """One 20 ms packet with audible energy, most of it at ``freq``."""
    x = pcm([payload])
    return float(np.sqrt((x * x).mean())) > 1000 and band_share(x, freq, 100) > 0.5


async def _run_forward(e2e, tmp_path: Path, callee_xml: str, caller_xml: str, *,
                       caller_tone: Path | None = None, callee_tone: Path | None = None,
                       ) -> tuple[object, str, str]:
    """Run one forwarded call; returns (ended session, caller log, callee log)."""
    require_binary("sipp")
    uas_xml = rendered(tmp_path, callee_xml, callee_tone) if callee_tone else \
        SCENARIOS / callee_xml
    uac_xml = rendered(tmp_path, caller_xml, caller_tone) if caller_tone else \
        SCENARIOS / caller_xml
    async with sipp(tmp_path, "-sf", str(uas_xml)) as callee:
        await wait_sipp_listening(callee.port)
        await e2e.rule_with("fwd", FORWARD.replace(
            "__TARGET__", f"sip:callee@127.0.0.1:{callee.port}"), name="fwd")
        async with sipp(tmp_path, "-sf", str(uac_xml), "-s", "fwd",
                        remote=f"127.0.0.1:{e2e.sip_port}") as caller:
            rc_caller = await caller.wait(30)
            rc_callee = await callee.wait(30)
            caller_log, callee_log = messages_log(caller.cwd), messages_log(callee.cwd)
            assert rc_caller == 0, caller.logs()
            assert rc_callee == 0, callee.logs()
    runtime = e2e.gw.runtime
    await wait_until(lambda: runtime.recent and not runtime.sessions, 10, "the session to end")
    (session,) = runtime.recent
    return session, caller_log, callee_log


async def test_forward_with_early_media_bridges_audio_both_ways(e2e, tmp_path):
    settings = e2e.gw.settings
    caller_tone = tone_file(tmp_path / "caller.ul", CALLER_HZ)
    callee_tone = tone_file(tmp_path / "callee.ul", CALLEE_HZ)
    async with capture(tmp_path / "rtp.pcap", settings.rtp_port_min,
                       settings.rtp_port_max) as pcap:
        session, caller_log, callee_log = await _run_forward(
            e2e, tmp_path, "uas_b2bua_early.xml", "uac_b2bua.xml",
            caller_tone=caller_tone, callee_tone=callee_tone)
        await asyncio.sleep(0.2)  # let dumpcap write the last packets
    state = session.namespace["state"]
    assert state["events"] == [
        ("c2", "Ringing", 180), ("c2", "Ringing", 183), ("c2", "Connected", None),
        ("c1", "Connected", None), ("c1", "Disconnected", None),
        ("c2", "Disconnected", None)], state["events"]
    assert state["established"] == 1
    # the caller got the ringing and the early media relayed
    assert "SIP/2.0 180 Ringing" in caller_log
    assert "SIP/2.0 183 Session Progress" in caller_log

    # the RTP ports of both legs, from the SDPs in sipp's logs: the caller's INVITE, then
    # the gateway's 183/200 to it; the gateway's INVITE to the callee, then its 183/200
    caller_port, gw1 = sdp_ports(caller_log)[:2]
    gw2, callee_port = sdp_ports(callee_log)[:2]
    packets = rtp_packets(pcap)
    to_caller = [p for s, d, p in packets if (s, d) == (gw1, caller_port)]
    to_callee = [p for s, d, p in packets if (s, d) == (gw2, callee_port)]
    from_caller = [p for s, d, p in packets if (s, d) == (caller_port, gw1)]
    from_callee = [p for s, d, p in packets if (s, d) == (callee_port, gw2)]
    assert band_share(pcm(from_caller), CALLER_HZ) > 0.9  # each sent its own tone
    assert band_share(pcm(from_callee), CALLEE_HZ) > 0.9
    # both ways: each side hears the other's tone (the last 1.5 s before the hang-up)
    heard_by_caller = pcm(to_caller)[-85 * 160:-10 * 160]
    heard_by_callee = pcm(to_callee)[-85 * 160:-10 * 160]
    assert band_share(heard_by_caller, CALLEE_HZ) > 0.5, band_share(heard_by_caller, CALLER_HZ)
    assert band_share(heard_by_callee, CALLER_HZ) > 0.5, band_share(heard_by_callee, CALLEE_HZ)
    # early media: the callee's tone reached the caller before the caller had been
    # answered (it streams only after the 200 OK, so before its first packet)
    first_from_caller = packets.index(next(x for x in packets if x[:2] == (caller_port, gw1)))
    early = [p for s, d, p in packets[:first_from_caller]
             if (s, d) == (gw1, caller_port) and carries(p, CALLEE_HZ)]
    assert len(early) >= 20, len(early)


async def test_callee_bye_hangs_up_the_caller(e2e, tmp_path):
    session, caller_log, _ = await _run_forward(
        e2e, tmp_path, "uas_b2bua_bye.xml", "uac_b2bua_wait_bye.xml",
        caller_tone=tone_file(tmp_path / "caller.ul", CALLER_HZ),
        callee_tone=tone_file(tmp_path / "callee.ul", CALLEE_HZ))
    state = session.namespace["state"]
    assert state["events"] == [
        ("c2", "Ringing", 180), ("c2", "Connected", None), ("c1", "Connected", None),
        ("c2", "Disconnected", None), ("c1", "Disconnected", None)], state["events"]
    assert "SIP/2.0 180 Ringing" in caller_log and "SIP/2.0 183" not in caller_log
    assert [c.finish_reason for c in session.record.calls] == ["normal", "normal"]


async def test_busy_callee_is_mirrored_to_the_caller_as_486(e2e, tmp_path):
    # the caller requires the 486; the callee requires our ACK for its 486
    session, caller_log, _ = await _run_forward(e2e, tmp_path, "uas_486.xml",
                                                "uac_b2bua_486.xml")
    state = session.namespace["state"]
    assert state["events"] == [("c2", "Failed", 486), ("c1", "Failed", 486)], state["events"]
    assert "SIP/2.0 486 Busy Here" in caller_log
    assert [c.finish_reason for c in session.record.calls] == ["busy", "busy"]
