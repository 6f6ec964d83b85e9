"""SIP call control against a scripted raw-UDP peer: early media both ways (183 with SDP
and RTP before the answer), REFER with NOTIFY/sipfrag progress (RFC 3515), MESSAGE
(RFC 3428) and INFO (RFC 6086) in both directions."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.adapters.sip.leg import SipLeg
from gateway.adapters.sip.message import SipRequest, SipResponse, make_response
from gateway.adapters.sip.rtp import build_rtp, parse_rtp
from gateway.adapters.sip.sdp import parse_sdp
from gateway.errors import SipError
from tests.integration.sip_harness import Recorder, running_adapter
from tests.integration.test_sip_flows import SDP, UdpPeer, _req


class RtpPeer:
    """The peer's RTP socket: sends a few G.711 packets, collects what arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    async def send(self, port: int, pt: int, count: int = 10) -> None:
        payload = (b"\xd5" if pt == 8 else b"\xff") * 160
        for i in range(count):
            self.sock.sendto(build_rtp(pt, 100 + i, 160 * i, 0x1234, payload),
                             ("127.0.0.1", port))
            await asyncio.sleep(0.02)

    async def recv(self, timeout: float = 5.0) -> bytes:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recv(self.sock, 2048), timeout)


def sdp_for(port: int, pts: str = "8 0 101") -> str:
    return SDP.replace("m=audio 40000 RTP/AVP 8 0 101", f"m=audio {port} RTP/AVP {pts}")


def media_port(msg: SipRequest | SipResponse) -> int:
    return parse_sdp(msg.body).media[0].port


def in_dialog(method: str, inv: SipRequest, to: str, cseq: int, branch: str, *,
              body: bytes = b"", ctype: str = "", extra: list[tuple[str, str]] = ()
              ) -> SipRequest:
    """A request from the peer in the dialog of ``inv`` (the peer is the caller)."""
    req = _req(method, inv, to, cseq, branch)
    req.headers += list(extra)
    if body:
        req.headers.append(("Content-Type", ctype))
        req.body = body
    return req


async def answered_inbound(adapter, peer: UdpPeer, rec: Recorder
                           ) -> tuple[SipLeg, SipRequest, str]:
    legs: list[SipLeg] = []

    async def on_incoming(leg: SipLeg) -> bool:
        leg.listener = rec
        legs.append(leg)
        await leg.answer()
        return True

    adapter.on_incoming = on_incoming
    inv = peer.invite(adapter.port)
    peer.send(inv, adapter.port)
    ok = await peer.expect(200)
    to = ok.get("To") or ""
    peer.send(_req("ACK", inv, to, 1, "z9hG4bKack"), adapter.port)
    await rec.wait_for("connected")
    return legs[0], inv, to


def notify(inv: SipRequest, to: str, cseq: int, frag: str, state: str) -> SipRequest:
    return in_dialog("NOTIFY", inv, to, cseq, f"z9hG4bKn{cseq}", body=frag.encode(),
                     ctype="message/sipfrag;version=2.0",
                     extra=[("Event", "refer"), ("Subscription-State", state),
                            ("Contact", "<sip:peer@127.0.0.1>")])


# -- early media -------------------------------------------------------------------------
async def test_inbound_early_media_sends_183_with_sdp_and_rtp_flows_before_answer() -> None:
    rec, legs = Recorder(), []

    async def on_incoming(leg: SipLeg) -> bool:
        leg.listener = rec
        legs.append(leg)
        await leg.ring()
        await leg.start_early_media({"X-Early": "1"})
        await leg.start_early_media()  # a second one sends nothing
        return True

    peer, rtp = UdpPeer(), RtpPeer()
    async with running_adapter(on_incoming) as adapter:
        inv = peer.invite(adapter.port, body=sdp_for(rtp.port))
        peer.send(inv, adapter.port)
        await peer.expect(180)
        progress = await peer.expect(183)
        assert progress.get("Content-Type") == "application/sdp"
        assert progress.get("X-Early") == "1" and b"RTP/AVP 8 101" in progress.body
        # the gateway's RTP reaches the caller before any answer ...
        assert parse_rtp(await rtp.recv()).payload_type == 8
        # ... and the caller's RTP reaches the runtime
        await rtp.send(media_port(progress), 8)
        await rec.wait_audio(3)
        assert rec.names() == []  # still unanswered
        leg = legs[0]
        await leg.answer()
        ok = await peer.expect(200)
        assert ok.body == progress.body  # the same SDP answer (RFC 6337)
        peer.send(_req("ACK", inv, ok.get("To") or "", 1, "z9hG4bKa1"), adapter.port)
        await rec.wait_for("connected")
        with pytest.raises(SipError):
            await leg.start_early_media()
        with pytest.raises(TimeoutError):
            await peer.expect(183, timeout=0.2)  # exactly one 183 went out
    peer.close()
    rtp.close()


async def test_outbound_183_with_sdp_delivers_early_audio_before_connected() -> None:
    rec, rtp, peer = Recorder(), RtpPeer(), UdpPeer()
    async with running_adapter() as adapter:
        leg = adapter.new_outbound_leg(f"sip:bob@127.0.0.1:{peer.port}", callerid="gw")
        leg.listener = rec
        await leg.dial()
        inv = await peer.expect("INVITE")
        body = sdp_for(rtp.port, "0 101").encode()
        peer.send(make_response(inv, 183, "Session Progress", to_tag="b1", body=body),
                  adapter.port)
        (code, _, _, early) = await rec.wait_for("progress")
        assert code == 183 and early is True
        await rtp.send(media_port(inv), 0)
        await rec.wait_audio(3)
        assert rec.names() == ["progress"]  # early audio, not yet answered
        assert parse_rtp(await rtp.recv()).payload_type == 0  # and ours reaches the callee
        peer.send(make_response(inv, 200, "OK", to_tag="b1", body=body,
                                extra=[("Contact", f"<sip:bob@127.0.0.1:{peer.port}>")]),
                  adapter.port)
        await rec.wait_for("connected")
        await peer.expect("ACK")
    peer.close()
    rtp.close()


# -- REFER ---------------------------------------------------------------------------------
async def test_refer_accepted_then_notify_sipfrag_200_completes_transfer() -> None:
    rec, peer = Recorder(), UdpPeer()
    async with running_adapter() as adapter:
        leg, inv, to = await answered_inbound(adapter, peer, rec)
        task = asyncio.create_task(leg.refer("sip:carol@example.com", {"X-Why": "test"}))
        refer = await peer.expect("REFER")
        assert isinstance(refer, SipRequest)
        assert refer.get("Refer-To") == "<sip:carol@example.com>"
        assert refer.get("Referred-By") and refer.get("X-Why") == "test"
        assert refer.uri == f"sip:peer@127.0.0.1:{peer.port}"  # the caller's Contact
        assert refer.to.tag == "p1" and refer.cseq == (1, "REFER")
        peer.send(make_response(refer, 202, "Accepted"), adapter.port)
        await task
        with pytest.raises(SipError):  # one transfer at a time
            await leg.refer("sip:dave@example.com")
        peer.send(notify(inv, to, 2, "SIP/2.0 100 Trying\r\n", "active;expires=60"),
                  adapter.port)
        assert (await peer.expect(200)).cseq == (2, "NOTIFY")
        await asyncio.sleep(0.05)
        assert "transfer" not in rec.names()  # 1xx is progress only
        peer.send(notify(inv, to, 3, "SIP/2.0 200 OK\r\nContent-Length: 0\r\n",
                         "terminated;reason=noresource"), adapter.port)
        assert (await peer.expect(200)).cseq == (3, "NOTIFY")
        assert await rec.wait_for("transfer") == (True, 200, "OK")
        # a late NOTIFY is answered but reports nothing more
        peer.send(notify(inv, to, 4, "SIP/2.0 200 OK\r\n", "terminated"), adapter.port)
        assert (await peer.expect(200)).cseq == (4, "NOTIFY")
    peer.close()
    assert rec.names().count("transfer") == 1


async def _answered_outbound(adapter, peer: UdpPeer, rec: Recorder
                             ) -> tuple[SipLeg, SipRequest, SipResponse]:
    leg = adapter.new_outbound_leg(f"sip:bob@127.0.0.1:{peer.port}", callerid="gw")
    leg.listener = rec
    await leg.dial()
    inv = await peer.expect("INVITE")
    assert isinstance(inv, SipRequest)
    ok = make_response(inv, 200, "OK", to_tag="b1", body=SDP.encode(),
                       extra=[("Contact", f"<sip:bob@127.0.0.1:{peer.port};x=1>")])
    peer.send(ok, adapter.port)
    await peer.expect("ACK")
    await rec.wait_for("connected")
    return leg, inv, ok


def uas_request(method: str, inv: SipRequest, ok: SipResponse, cseq: int, *,
                body: bytes = b"", ctype: str = "", extra: list[tuple[str, str]] = ()
                ) -> SipRequest:
    """A request from the peer in the dialog where the gateway is the caller."""
    req = SipRequest(method=method, uri="sip:gw@127.0.0.1")
    req.headers = [("Via", f"SIP/2.0/UDP {inv.top_via.sent_by};branch=z9hG4bKu{cseq}"),
                   ("From", ok.get("To") or ""), ("To", inv.get("From") or ""),
                   ("Call-ID", inv.call_id), ("CSeq", f"{cseq} {method}"), *extra]
    if body:
        req.headers.append(("Content-Type", ctype))
        req.body = body
    return req


async def test_refer_on_outbound_leg_fails_with_sipfrag_486_and_603_refusal() -> None:
    rec, peer = Recorder(), UdpPeer()
    async with running_adapter() as adapter:
        leg, inv, ok = await _answered_outbound(adapter, peer, rec)
        task = asyncio.create_task(leg.refer("sip:busy@example.com"))
        refer = await peer.expect("REFER")
        assert refer.uri == f"sip:bob@127.0.0.1:{peer.port};x=1"  # the callee's Contact
        assert refer.to.tag == "b1" and refer.from_.tag == leg.local_tag
        peer.send(make_response(refer, 202, "Accepted"), adapter.port)
        await task

        def frag_notify(cseq: int, frag: str, state: str) -> SipRequest:
            # the peer answers with the NOTIFY's own Via: make it the peer's address
            req = uas_request("NOTIFY", inv, ok, cseq, body=frag.encode(),
                              ctype="message/sipfrag", extra=[("Event", "refer"),
                                                              ("Subscription-State", state)])
            req.set("Via", f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bKu{cseq}")
            return req

        peer.send(frag_notify(1, "SIP/2.0 180 Ringing", "active"), adapter.port)
        await peer.expect(200)
        peer.send(frag_notify(2, "SIP/2.0 486 Busy Here", "terminated"), adapter.port)
        await peer.expect(200)
        assert await rec.wait_for("transfer") == (False, 486, "Busy Here")
        rec.events.clear()
        # a second transfer: the REFER itself is declined
        task = asyncio.create_task(leg.refer("sip:nobody@example.com"))
        refer = await peer.expect("REFER")
        assert refer.cseq[0] > 1
        peer.send(make_response(refer, 603, "Decline"), adapter.port)
        await task
        assert await rec.wait_for("transfer") == (False, 603, "Decline")
        rec.events.clear()
        # a third: the subscription ends without a final status
        task = asyncio.create_task(leg.refer("sip:x@example.com"))
        refer = await peer.expect("REFER")
        peer.send(make_response(refer, 202, "Accepted"), adapter.port)
        await task
        peer.send(frag_notify(3, "SIP/2.0 100 Trying", "terminated;reason=timeout"),
                  adapter.port)
        await peer.expect(200)
        success, code, _ = await rec.wait_for("transfer")
        assert (success, code) == (False, 487)
    peer.close()


async def test_final_notify_before_202_and_call_ending_mid_transfer() -> None:
    rec, peer = Recorder(), UdpPeer()
    async with running_adapter() as adapter:
        leg, inv, to = await answered_inbound(adapter, peer, rec)
        task = asyncio.create_task(leg.refer("sip:carol@example.com"))
        refer = await peer.expect("REFER")
        peer.send(notify(inv, to, 2, "SIP/2.0 200 OK", "terminated"), adapter.port)
        await peer.expect(200)
        peer.send(make_response(refer, 202, "Accepted"), adapter.port)  # overtaken
        await task
        assert await rec.wait_for("transfer") == (True, 200, "OK")
        rec.events.clear()
        # a NOTIFY for another event package is not ours
        other = notify(inv, to, 3, "SIP/2.0 200 OK", "active")
        other.set("Event", "dialog")
        peer.send(other, adapter.port)
        assert (await peer.expect(481)).cseq == (3, "NOTIFY")
        # the transferee hangs up before reporting: the transfer fails with 487
        task = asyncio.create_task(leg.refer("sip:dave@example.com"))
        refer = await peer.expect("REFER")
        peer.send(make_response(refer, 202, "Accepted"), adapter.port)
        await task
        peer.send(in_dialog("BYE", inv, to, 4, "z9hG4bKbye"), adapter.port)
        await peer.expect(200)
        assert (await rec.wait_for("transfer"))[:2] == (False, 487)
    peer.close()
    assert rec.names() == ["disconnected", "transfer"]


async def test_notify_without_a_transfer_gets_481_and_refer_needs_a_dialog() -> None:
    rec, peer = Recorder(), UdpPeer()
    async with running_adapter() as adapter:
        _leg, inv, to = await answered_inbound(adapter, peer, rec)
        peer.send(notify(inv, to, 2, "SIP/2.0 200 OK", "terminated"), adapter.port)
        assert (await peer.expect(481)).cseq == (2, "NOTIFY")
        out = adapter.new_outbound_leg("sip:x@127.0.0.1:9", callerid="gw")
        with pytest.raises(SipError):
            await out.refer("sip:y@example.com")
        with pytest.raises(SipError):
            await out.send_message("hi")
    peer.close()


# -- MESSAGE and INFO ----------------------------------------------------------------------------
async def test_message_both_ways() -> None:
    rec, peer = Recorder(), UdpPeer()
    async with running_adapter() as adapter:
        leg, inv, to = await answered_inbound(adapter, peer, rec)
        peer.send(in_dialog("MESSAGE", inv, to, 2, "z9hG4bKm1", body="hi there ✓".encode(),
                            ctype="text/plain;charset=UTF-8", extra=[("X-Tag", "m1")]),
                  adapter.port)
        assert (await peer.expect(200)).cseq == (2, "MESSAGE")
        assert await rec.wait_for("message") == ("hi there ✓", {"X-Tag": "m1"})
        peer.send(in_dialog("MESSAGE", inv, to, 3, "z9hG4bKm2", body=b"{}",
                            ctype="application/json"), adapter.port)
        refused = await peer.expect(415)
        assert refused.get("Accept") == "text/plain"
        # ours: text/plain in the dialog; a 2xx completes it, a refusal raises
        task = asyncio.create_task(leg.send_message("héllo"))
        msg = await peer.expect("MESSAGE")
        assert msg.get("Content-Type") == "text/plain;charset=UTF-8"
        assert msg.body == "héllo".encode() and msg.to.tag == "p1"
        peer.send(make_response(msg, 200, "OK"), adapter.port)
        await task
        task = asyncio.create_task(leg.send_message("again"))
        msg = await peer.expect("MESSAGE")
        peer.send(make_response(msg, 488, "Not Acceptable Here"), adapter.port)
        with pytest.raises(SipError, match="488"):
            await task
    peer.close()
    assert rec.names() == ["connected", "message", "disconnected"]


async def test_info_both_ways_and_dtmf_info_stays_a_tone() -> None:
    rec, peer = Recorder(), UdpPeer()
    async with running_adapter() as adapter:
        leg, inv, to = await answered_inbound(adapter, peer, rec)
        peer.send(in_dialog("INFO", inv, to, 2, "z9hG4bKi1", body=b'{"a": 1}',
                            ctype="application/json; charset=utf-8", extra=[("X-Id", "7")]),
                  adapter.port)
        await peer.expect(200)
        assert await rec.wait_for("info") == ("application/json", '{"a": 1}', {"X-Id": "7"})
        peer.send(in_dialog("INFO", inv, to, 3, "z9hG4bKi2", body=b"Signal=5\r\nDuration=160\r\n",
                            ctype="application/dtmf-relay"), adapter.port)
        await peer.expect(200)
        assert await rec.wait_for("tone") == ("5", 3)
        peer.send(in_dialog("INFO", inv, to, 4, "z9hG4bKi3"), adapter.port)  # empty keep-alive
        await peer.expect(200)
        task = asyncio.create_task(leg.send_info("application/x-test", "k=v", {"X-N": "1"}))
        info = await peer.expect("INFO")
        assert info.get("Content-Type") == "application/x-test" and info.body == b"k=v"
        assert info.get("X-N") == "1"
        peer.send(make_response(info, 200, "OK"), adapter.port)
        await task
    peer.close()
    assert rec.names() == ["connected", "info", "tone", "disconnected"]
