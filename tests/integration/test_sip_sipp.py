"""The SIP adapter against the real ``sipp`` binary on loopback (RFC 3261 call flows)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from gateway.adapters.sip.leg import SipLeg
from gateway.runtime.leg import DigestCredentials
from tests.integration.sip_harness import (
    SCENARIOS,
    Recorder,
    running_adapter,
    sipp,
    wait_sipp_listening,
)


def _answering(rec: Recorder, legs: list[SipLeg]):
    async def on_incoming(leg: SipLeg) -> bool:
        leg.listener = rec
        legs.append(leg)
        await leg.ring()
        await leg.answer()
        return True

    return on_incoming


async def test_sipp_uac_calls_adapter_and_hangs_up(tmp_path: Path) -> None:
    rec, legs = Recorder(), []
    async with running_adapter(_answering(rec, legs)) as adapter, \
            sipp(tmp_path, "-sn", "uac", "-s", "4711",
                 remote=f"127.0.0.1:{adapter.port}") as peer:
        rc = await peer.wait()
        assert rc == 0, peer.logs()
        await rec.wait_for("disconnected")
    leg = legs[0]
    assert leg.incoming and leg.number == "4711" and leg.callerid == "sipp"
    assert leg.media_format is not None
    assert rec.names() == ["connected", "disconnected"]
    assert rec.get("disconnected")[1] is True  # by_remote


async def test_adapter_dials_sipp_uas_then_hangs_up(tmp_path: Path) -> None:
    rec = Recorder()
    async with running_adapter() as adapter, sipp(tmp_path, "-sn", "uas") as peer:
        await wait_sipp_listening(peer.port)
        leg = adapter.new_outbound_leg(f"sip:service@127.0.0.1:{peer.port}", callerid="gw",
                                       display_name="Gate Way", headers={"X-Trace": "t1"})
        leg.listener = rec
        await leg.dial()
        await rec.wait_for("connected")
        assert leg.number == "service" and leg.headers == {"X-Trace": "t1"}
        await leg.hangup()
        assert await peer.wait() == 0, peer.logs()
    assert rec.names() == ["progress", "connected", "disconnected"]
    assert rec.get("progress")[0] == 180
    assert rec.get("disconnected")[1] is False
    sent = peer.logs()
    assert '"Gate Way" <sip:gw@127.0.0.1>' in sent and "X-Trace: t1" in sent


async def test_busy_callee_gets_ack_and_leg_fails_486(tmp_path: Path) -> None:
    rec = Recorder()
    async with running_adapter() as adapter, \
            sipp(tmp_path, "-sf", str(SCENARIOS / "uas_486.xml")) as peer:
        await wait_sipp_listening(peer.port)
        leg = adapter.new_outbound_leg(f"sip:busy@127.0.0.1:{peer.port}", callerid="gw")
        leg.listener = rec
        await leg.dial()
        code, reason, headers = await rec.wait_for("failed")
        assert (code, reason) == (486, "Busy Here")
        assert headers == {"X-Reason-Detail": "busy-test"}
        assert await peer.wait() == 0, peer.logs()  # sipp got its ACK
    assert rec.names() == ["failed"]


async def test_digest_trunk_challenge_then_200(tmp_path: Path) -> None:
    rec = Recorder()
    async with running_adapter() as adapter, \
            sipp(tmp_path, "-sf", str(SCENARIOS / "uas_auth.xml")) as peer:
        await wait_sipp_listening(peer.port)
        leg = adapter.new_outbound_leg(f"sip:trunk@127.0.0.1:{peer.port}", callerid="gw",
                                       auth=DigestCredentials("u", "p"))
        leg.listener = rec
        await leg.dial()
        await rec.wait_for("connected")
        await leg.hangup()
        assert await peer.wait() == 0, peer.logs()
    assert rec.names() == ["connected", "disconnected"]
    log = peer.logs()
    assert "CSeq: 2 INVITE" in log and 'qop=auth' in log


async def test_digest_wrong_password_fails(tmp_path: Path) -> None:
    rec = Recorder()
    async with running_adapter() as adapter, \
            sipp(tmp_path, "-sf", str(SCENARIOS / "uas_auth.xml")) as peer:
        await wait_sipp_listening(peer.port)
        leg = adapter.new_outbound_leg(f"sip:trunk@127.0.0.1:{peer.port}", callerid="gw",
                                       auth=DigestCredentials("u", "wrong"))
        leg.listener = rec
        await leg.dial()
        code, _, _ = await rec.wait_for("failed")
        assert code == 403
        await peer.wait()
    assert rec.names() == ["failed"]


async def test_malformed_datagrams_do_not_disturb_a_call(tmp_path: Path) -> None:
    rec, legs = Recorder(), []
    async with running_adapter(_answering(rec, legs)) as adapter, \
            sipp(tmp_path, "-sn", "uac", "-d", "1500",
                 remote=f"127.0.0.1:{adapter.port}") as peer:
        await rec.wait_for("connected")
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            bad_cseq = (b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
                        b"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad1\r\n"
                        b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: bad-1\r\n"
                        b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
            s.sendto(b"\x00\xffnot sip at all", ("127.0.0.1", adapter.port))
            s.sendto(b"INVITE sip:x SIP/2.0\r\nVia: broken\r\n\r\n", ("127.0.0.1", adapter.port))
            s.sendto(bad_cseq, ("127.0.0.1", adapter.port))
            data = await asyncio.wait_for(loop.sock_recv(s, 65535), 5)
            assert data.startswith(b"SIP/2.0 400 Bad Request")
            assert b"does not match" in data.split(b"\r\n")[0]
            assert b"Call-ID: bad-1" in data
        assert await peer.wait() == 0, peer.logs()
        await rec.wait_for("disconnected")
    assert rec.names() == ["connected", "disconnected"]


async def test_no_common_codec_gets_488(tmp_path: Path) -> None:
    offered: list[SipLeg] = []

    async def on_incoming(leg: SipLeg) -> bool:
        offered.append(leg)
        return True

    async with running_adapter(on_incoming) as adapter, \
            sipp(tmp_path, "-sf", str(SCENARIOS / "uac_g722_only.xml"), "-s", "100",
                 remote=f"127.0.0.1:{adapter.port}") as peer:
        assert await peer.wait() == 0, peer.logs()
    assert offered == []  # the runtime was never bothered
    assert "SIP/2.0 488 Not Acceptable Here" in peer.logs()


async def test_rfc4733_dtmf_from_sipp_pcap(tmp_path: Path) -> None:
    rec, legs = Recorder(), []
    async with running_adapter(_answering(rec, legs)) as adapter, \
            sipp(tmp_path, "-sf", str(SCENARIOS / "uac_dtmf.xml"), "-s", "200",
                 remote=f"127.0.0.1:{adapter.port}") as peer:
        assert await peer.wait() == 0, peer.logs()
        await rec.wait_for("disconnected")
    assert ("tone", ("1", 1)) in rec.events
    assert legs[0].headers == {"X-Test-Case": "dtmf"}


async def test_options_and_unknown_methods(tmp_path: Path) -> None:
    async with running_adapter() as adapter:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            for method, expect in (("OPTIONS", b"SIP/2.0 200"), ("REGISTER", b"SIP/2.0 405"),
                                   ("FOO", b"SIP/2.0 501"), ("BYE", b"SIP/2.0 481")):
                msg = (f"{method} sip:x@127.0.0.1 SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{method}\r\n"
                       f"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: o-{method}\r\n"
                       f"CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n").encode()
                s.sendto(msg, ("127.0.0.1", adapter.port))
                data = await asyncio.wait_for(loop.sock_recv(s, 65535), 5)
                assert data.startswith(expect), data
                if expect != b"SIP/2.0 481":
                    assert b"Allow: INVITE" in data
