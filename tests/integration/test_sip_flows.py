"""SIP call flows against a scripted raw-UDP peer: CANCEL both ways, INVITE retransmission,
2xx retransmission until ACK, answer timeout, a 200 crossing our CANCEL, re-INVITE, TCP."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from gateway.adapters.sip.leg import SipLeg
from gateway.adapters.sip.message import SipRequest, SipResponse, make_response, parse_message
from tests.integration.sip_harness import Recorder, running_adapter, sipp

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


class UdpPeer:
    """A scripted SIP peer on a raw UDP socket."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def send(self, msg: SipRequest | SipResponse | bytes, port: int) -> None:
        data = msg if isinstance(msg, bytes) else msg.serialize()
        self.sock.sendto(data, ("127.0.0.1", port))

    async def recv(self, timeout: float = 5.0) -> SipRequest | SipResponse:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)
        return parse_message(data)

    async def expect(self, what: str | int, timeout: float = 5.0) -> SipRequest | SipResponse:
        """Next message that is request ``what`` or response ``what`` (skipping others)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.01, end - loop.time()))
            key = msg.method if isinstance(msg, SipRequest) else msg.status
            if key == what:
                return msg

    def invite(self, adapter_port: int, branch: str = "z9hG4bKpeer1", call_id: str = "c-1",
               body: str = SDP) -> SipRequest:
        msg = parse_message((
            f"INVITE sip:555@127.0.0.1:{adapter_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch}\r\n"
            f"From: \"Peer\" <sip:peer@127.0.0.1:{self.port}>;tag=p1\r\n"
            f"To: <sip:555@127.0.0.1:{adapter_port}>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:peer@127.0.0.1:{self.port}>\r\n"
            f"X-Customer: 77\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        assert isinstance(msg, SipRequest)
        return msg


def _req(method: str, invite: SipRequest, to: str, cseq: int, branch: str) -> SipRequest:
    msg = SipRequest(method=method, uri=invite.uri)
    msg.headers = [("Via", invite.get("Via").split(";branch=")[0] + f";branch={branch}"),  # type: ignore[union-attr]
                   ("From", invite.get("From") or ""), ("To", to),
                   ("Call-ID", invite.call_id), ("CSeq", f"{cseq} {method}")]
    return msg


async def test_inbound_invite_retransmission_then_cancel() -> None:
    rec, legs = Recorder(), []

    async def on_incoming(leg: SipLeg) -> bool:
        leg.listener = rec
        legs.append(leg)
        await leg.ring()
        return True

    peer = UdpPeer()
    async with running_adapter(on_incoming) as adapter:
        inv = peer.invite(adapter.port)
        peer.send(inv, adapter.port)
        ringing = await peer.expect(180)
        peer.send(inv, adapter.port)  # retransmission: same branch
        again = await peer.expect(180)
        assert again.to.tag == ringing.to.tag
        await asyncio.sleep(0.1)
        assert len(legs) == 1 and len(adapter.legs) == 1  # never a second call
        leg = legs[0]
        assert (leg.number, leg.callerid, leg.display_name) == ("555", "peer", "Peer")
        assert leg.headers == {"X-Customer": "77"}
        cancel = _req("CANCEL", inv, inv.get("To") or "", 1, "z9hG4bKpeer1")
        peer.send(cancel, adapter.port)
        ok = await peer.expect(200)
        assert ok.cseq == (1, "CANCEL")
        terminated = await peer.expect(487)
        assert terminated.cseq == (1, "INVITE")
        peer.send(_req("ACK", inv, terminated.get("To") or "", 1, "z9hG4bKpeer1"), adapter.port)
        code, _, _ = await rec.wait_for("failed")
        assert code == 487
    peer.close()
    assert rec.names() == ["failed"]


async def test_uas_retransmits_2xx_until_ack_and_handles_reinvite_and_bye() -> None:
    rec, legs = Recorder(), []

    async def on_incoming(leg: SipLeg) -> bool:
        leg.listener = rec
        legs.append(leg)
        await leg.answer({"X-Answered-By": "test"})
        return True

    peer = UdpPeer()
    async with running_adapter(on_incoming) as adapter:
        inv = peer.invite(adapter.port)
        peer.send(inv, adapter.port)
        first = await peer.expect(200)
        again = await peer.expect(200)  # no ACK yet: the UAS core retransmits (T1=0.1 s)
        assert again.serialize() == first.serialize()
        assert first.get("X-Answered-By") == "test"
        assert b"m=audio" in first.body and b"RTP/AVP 8 101" in first.body  # PCMA first
        to = first.get("To") or ""
        peer.send(_req("ACK", inv, to, 1, "z9hG4bKack1"), adapter.port)
        await rec.wait_for("connected")
        # re-INVITE with the same offer: 200 with SDP; then one without a common codec: 488
        reinv = _req("INVITE", inv, to, 2, "z9hG4bKre1")
        reinv.headers.append(("Contact", f"<sip:peer@127.0.0.1:{peer.port}>"))
        reinv.headers.append(("Content-Type", "application/sdp"))
        reinv.body = SDP.encode()
        peer.send(reinv, adapter.port)
        ok = await peer.expect(200)
        assert ok.cseq == (2, "INVITE") and b"RTP/AVP 8 101" in ok.body
        peer.send(_req("ACK", inv, to, 2, "z9hG4bKack2"), adapter.port)
        bad = _req("INVITE", inv, to, 3, "z9hG4bKre2")
        bad.headers.append(("Content-Type", "application/sdp"))
        bad.body = SDP.replace("8 0 101", "9").encode()
        peer.send(bad, adapter.port)
        assert (await peer.expect(488)).cseq == (3, "INVITE")
        peer.send(_req("ACK", inv, to, 3, "z9hG4bKre2"), adapter.port)
        bye = _req("BYE", inv, to, 4, "z9hG4bKbye1")
        bye.headers.append(("X-Hangup-Cause", "done"))
        peer.send(bye, adapter.port)
        assert (await peer.expect(200)).cseq == (4, "BYE")
        headers, by_remote = await rec.wait_for("disconnected")
        assert by_remote is True and headers == {"X-Hangup-Cause": "done"}
        # a BYE for a dialog that does not exist
        stray = _req("BYE", inv, to.replace("tag=", "tag=zz"), 5, "z9hG4bKbye2")
        peer.send(stray, adapter.port)
        assert (await peer.expect(481)).cseq == (5, "BYE")
    peer.close()
    assert rec.names() == ["connected", "disconnected"]


async def _dial_peer(adapter, peer: UdpPeer, rec: Recorder) -> tuple[SipLeg, SipRequest]:
    leg = adapter.new_outbound_leg(f"sip:bob@127.0.0.1:{peer.port}", callerid="gw")
    leg.listener = rec
    await leg.dial()
    inv = await peer.expect("INVITE")
    assert isinstance(inv, SipRequest)
    return leg, inv


async def test_answer_timeout_sends_cancel_and_fails_408() -> None:
    rec = Recorder()
    peer = UdpPeer()
    async with running_adapter(answer_timeout=0.5) as adapter:
        _leg, inv = await _dial_peer(adapter, peer, rec)
        assert b"RTP/AVP 0 8 101" in inv.body
        peer.send(make_response(inv, 180, "Ringing", to_tag="b1"), adapter.port)
        await rec.wait_for("progress")
        cancel = await peer.expect("CANCEL")
        assert isinstance(cancel, SipRequest)
        assert cancel.top_via.branch == inv.top_via.branch and cancel.cseq == (1, "CANCEL")
        code, reason, _ = await rec.wait_for("failed")
        assert (code, reason) == (408, "Request Timeout")
        peer.send(make_response(cancel, 200, "OK", to_tag="b1"), adapter.port)
        peer.send(make_response(inv, 487, "Request Terminated", to_tag="b1"), adapter.port)
        ack = await peer.expect("ACK")
        assert ack.top_via.branch == inv.top_via.branch
    peer.close()
    assert rec.names() == ["progress", "failed"]


async def test_200_crossing_cancel_is_acked_then_byed() -> None:
    rec = Recorder()
    peer = UdpPeer()
    async with running_adapter() as adapter:
        leg, inv = await _dial_peer(adapter, peer, rec)
        peer.send(make_response(inv, 183, "Session Progress", to_tag="b1"), adapter.port)
        await rec.wait_for("progress")
        await leg.hangup()
        cancel = await peer.expect("CANCEL")
        ok = make_response(inv, 200, "OK", to_tag="b1",
                           extra=[("Contact", f"<sip:bob@127.0.0.1:{peer.port}>")],
                           body=SDP.encode())
        peer.send(ok, adapter.port)  # the 200 crosses the CANCEL
        peer.send(make_response(cancel, 200, "OK", to_tag="b1"), adapter.port)
        ack = await peer.expect("ACK")
        assert ack.top_via.branch != inv.top_via.branch and ack.cseq == (1, "ACK")
        bye = await peer.expect("BYE")
        assert bye.to.tag == "b1"
    peer.close()
    assert rec.names() == ["progress", "failed"]
    assert rec.get("failed")[0] == 487
    assert rec.get("progress")[3] is False  # 183 without SDP: no early media


async def test_outbound_2xx_retransmission_is_reacked_and_remote_bye() -> None:
    rec = Recorder()
    peer = UdpPeer()
    async with running_adapter() as adapter:
        leg, inv = await _dial_peer(adapter, peer, rec)
        ok = make_response(inv, 200, "OK", to_tag="b1",
                           extra=[("Contact", f"<sip:bob@127.0.0.1:{peer.port}>"),
                                  ("X-Answer", "1")],
                           body=SDP.encode())
        peer.send(ok, adapter.port)
        (headers,) = await rec.wait_for("connected")
        assert headers == {"X-Answer": "1"}
        assert leg.media_format is not None and leg.media_format.encoding.value == "pcma"
        await peer.expect("ACK")
        peer.send(ok, adapter.port)  # 2xx retransmission: ACK again
        await peer.expect("ACK")
        bye = SipRequest(method="BYE", uri=f"sip:gw@127.0.0.1:{adapter.port}")
        bye.headers = [("Via", f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bKb2"),
                       ("From", ok.get("To") or ""), ("To", inv.get("From") or ""),
                       ("Call-ID", inv.call_id), ("CSeq", "1 BYE")]
        peer.send(bye, adapter.port)
        assert (await peer.expect(200)).cseq == (1, "BYE")
        await rec.wait_for("disconnected")
    peer.close()
    assert rec.names() == ["connected", "disconnected"]


async def test_adapter_dials_sipp_uas_over_tcp(tmp_path: Path) -> None:
    rec = Recorder()
    async with running_adapter() as adapter, sipp(tmp_path, "-sn", "uas", "-t", "t1") as peer:
        for _ in range(100):  # wait for sipp's TCP listener
            try:
                _, w = await asyncio.open_connection("127.0.0.1", peer.port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        leg = adapter.new_outbound_leg(f"sip:service@127.0.0.1:{peer.port};transport=tcp",
                                       callerid="gw")
        leg.listener = rec
        await leg.dial()
        await rec.wait_for("connected")
        await leg.hangup()
        assert await peer.wait() == 0, peer.logs()
    assert rec.names() == ["progress", "connected", "disconnected"]
    assert "SIP/2.0/TCP" in peer.logs()


async def test_stop_ends_calls_with_bye(tmp_path: Path) -> None:
    rec, legs = Recorder(), []

    async def on_incoming(leg: SipLeg) -> bool:
        leg.listener = rec
        legs.append(leg)
        await leg.answer()
        return True

    peer = UdpPeer()
    async with running_adapter(on_incoming) as adapter:
        inv = peer.invite(adapter.port)
        peer.send(inv, adapter.port)
        ok = await peer.expect(200)
        peer.send(_req("ACK", inv, ok.get("To") or "", 1, "z9hG4bKa"), adapter.port)
        await rec.wait_for("connected")
    bye = await peer.expect("BYE")
    assert bye.call_id == "c-1"
    peer.close()
    assert rec.names() == ["connected", "disconnected"]


async def test_proxy_auth_407_is_acked_and_retried_once() -> None:
    from gateway.runtime.leg import DigestCredentials

    rec = Recorder()
    peer = UdpPeer()
    async with running_adapter() as adapter:
        leg = adapter.new_outbound_leg(f"sip:bob@127.0.0.1:{peer.port}", callerid="gw",
                                       auth=DigestCredentials("u", "p"))
        leg.listener = rec
        await leg.dial()
        inv = await peer.expect("INVITE")
        challenge = make_response(inv, 407, "Proxy Authentication Required", to_tag="x1", extra=[
            ("Proxy-Authenticate", 'Digest realm="px", nonce="n1", qop="auth", '
                                   "algorithm=SHA-256")])
        peer.send(challenge, adapter.port)
        ack = await peer.expect("ACK")
        assert ack.top_via.branch == inv.top_via.branch  # ACK for the 407, same branch
        retry = await peer.expect("INVITE")
        assert retry.cseq == (2, "INVITE") and retry.call_id == inv.call_id
        assert retry.top_via.branch != inv.top_via.branch
        auth = retry.get("Proxy-Authorization") or ""
        assert 'realm="px"' in auth and "algorithm=SHA-256" in auth and "nc=00000001" in auth
        # same challenge again: credentials are wrong, no second retry
        peer.send(make_response(retry, 407, "Proxy Authentication Required", to_tag="x2",
                                extra=[("Proxy-Authenticate", 'Digest realm="px", nonce="n2"')]),
                  adapter.port)
        code, _, _ = await rec.wait_for("failed")
        assert code == 407
        await peer.expect("ACK")
    peer.close()
    assert rec.names() == ["failed"]


async def test_hangup_of_unanswered_inbound_sends_480() -> None:
    rec, legs = Recorder(), []

    async def on_incoming(leg: SipLeg) -> bool:
        leg.listener = rec
        legs.append(leg)
        return True

    peer = UdpPeer()
    async with running_adapter(on_incoming) as adapter:
        inv = peer.invite(adapter.port)
        peer.send(inv, adapter.port)
        await peer.expect(100)
        for _ in range(50):
            if legs:
                break
            await asyncio.sleep(0.02)
        await legs[0].hangup()
        resp = await peer.expect(480)
        peer.send(_req("ACK", inv, resp.get("To") or "", 1, "z9hG4bKpeer1"), adapter.port)
        assert (await rec.wait_for("failed"))[0] == 480
    peer.close()


async def test_refused_call_gets_404() -> None:
    peer = UdpPeer()
    async with running_adapter() as adapter:  # default on_incoming refuses
        peer.send(peer.invite(adapter.port), adapter.port)
        assert (await peer.expect(404)).cseq == (1, "INVITE")
    peer.close()
