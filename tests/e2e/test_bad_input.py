"""Bad input while a real call is up: each gets a precise error and the call is untouched.

baresip talks to the fake AI (echo) through scenarios/inbound_ai.py while the test
throws malformed SIP, an SDP with no common codec, RTP garbage, bad platform_api
requests and a scenario that raises at the gateway."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

from gateway.api.session_methods import custom_data_limit
from tests.audio import pcm, segment_match, speech, write_wav
from tests.e2e.baresip import Baresip
from tests.e2e.conftest import shipped
from tests.e2e.helpers import session_id_of, wait_until
from tests.integration.sip_harness import SCENARIOS, sipp

BAD_CSEQ = (
    "INVITE sip:agent@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKbad1\r\n"
    "From: <sip:mallory@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\n"
    "Call-ID: bad-cseq-1\r\nCSeq: notanumber INVITE\r\nMax-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)

NO_ROUTE = (
    "INVITE sip:nobody-here@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnoroute1\r\n"
    "From: <sip:mallory@127.0.0.1>;tag=2\r\nTo: <sip:nobody-here@127.0.0.1>\r\n"
    "Call-ID: no-route-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    "Contact: <sip:mallory@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\n"
    "Content-Length: {len}\r\n\r\n{sdp}"
)
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

RAISES = """
def on_started(e):
    raise RuntimeError("scenario bug on purpose")
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


def sip_exchange(sip_port: int, payloads: list[bytes]) -> list[bytes]:
    """Send datagrams to the gateway's SIP port; collect replies for 1.5 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(1.5)
        port = s.getsockname()[1]
        for p in payloads:
            s.sendto(p.replace(b"{port}", str(port).encode()), ("127.0.0.1", sip_port))
        replies = []
        try:
            while True:
                replies.append(s.recv(65535))
        except TimeoutError:
            return replies


async def test_bad_input_gets_precise_errors_and_the_call_keeps_running(e2e, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    await e2e.rule_with("agent", shipped("inbound_ai.py"), name="inbound")
    raiser = await e2e.rule_with("raiser", RAISES, name="raiser")
    source = speech("vm-intro")  # 5.6 s of speech
    wav = tmp_path / "speech.wav"
    write_wav(wav, source)
    bs = Baresip(tmp_path, wav)
    try:
        await bs.dial(f"sip:agent@127.0.0.1:{e2e.sip_port}", timeout_s=20)
        await wait_until(lambda: e2e.fake.connected, 10, "the good call to reach the AI")
        (leg,) = e2e.gw.sip.legs
        rtp = leg._rtp

        # 1. malformed SIP: garbage is dropped, an answerable request gets 400
        replies = await asyncio.to_thread(sip_exchange, e2e.sip_port, [
            b"\x00\xffthis is not SIP\r\n\r\n", BAD_CSEQ.encode()])
        assert len(replies) == 1 and replies[0].startswith(b"SIP/2.0 400"), replies
        assert b"bad-cseq-1" in replies[0]

        # 1b. a number no rule matches gets 404 Not Found
        no_route = NO_ROUTE.replace("{len}", str(len(SDP))).replace("{sdp}", SDP)
        replies = await asyncio.to_thread(sip_exchange, e2e.sip_port, [no_route.encode()])
        finals = [r for r in replies if not r.startswith(b"SIP/2.0 1")]
        assert finals and finals[0].startswith(b"SIP/2.0 404"), replies

        # 2. an SDP offer with no common codec (G.722 only) gets 488
        async with sipp(tmp_path, "-sf", str(SCENARIOS / "uac_g722_only.xml"), "-s", "agent",
                        remote=f"127.0.0.1:{e2e.sip_port}") as uac:
            assert await uac.wait(20) == 0, uac.logs()

        # 3. RTP garbage on the call's media port is counted and dropped
        garbage_before = rtp.stats.garbage
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for junk in (b"", b"\x00", b"\x40" * 11, b"\xff" * 300, b"\x80\x00"):
                s.sendto(junk, ("127.0.0.1", rtp.local_port))
        await wait_until(lambda: rtp.stats.garbage >= garbage_before + 4, 5, "garbage counted")

        # 4. platform_api: auth, unknown rule, oversized custom data, malformed JSON
        missing = await e2e.api("StartScenarios", auth={"account_id": "1"}, rule_id=raiser)
        assert missing["error"]["code"] == 100
        wrong = await e2e.api("StartScenarios", auth={"account_id": "1", "api_key": "nope"},
                              rule_id=raiser)
        assert wrong["error"]["code"] == 100
        unknown = await e2e.api("StartScenarios", rule_id=987654)
        assert unknown["error"]["code"] == 147
        limit = custom_data_limit(e2e.gw.settings)  # Voximplant's 200 bytes by default
        big = await e2e.api("StartScenarios", rule_id=raiser, script_custom_data="x" * (limit + 1))
        assert big["error"]["code"] == 9005 and str(limit) in big["error"]["msg"]
        reply = await e2e.http.post("/platform_api/GetApplications/", content=b"{not json",
                                    headers={"content-type": "application/json"})
        assert reply.status_code == 200 and reply.json()["error"]["code"] == 101

        # 5. a scenario that raises ends its own session only, logged with its id
        started = await e2e.ok("StartScenarios", rule_id=raiser)
        sid = session_id_of(started["media_session_access_url"])
        await wait_until(lambda: e2e.gw.runtime.find_session(sid) is not None
                         and e2e.gw.runtime.find_session(sid).ended, 5, "the raising session")
        assert any(sid in r.getMessage() and "scenario bug on purpose" in (r.exc_text or "")
                   + r.getMessage() + str(r.exc_info) for r in caplog.records)
        hist = await e2e.ok("GetCallHistory", call_session_history_id=started[
            "call_session_history_id"])
        assert hist["result"][0]["finish_reason"] == "error"

        # the good call is still up and still streaming
        assert leg.state.name not in ("TERMINATED", "ENDED")
        await wait_until(lambda: not e2e.gw.runtime.sessions, 20, "the good call to finish")
    finally:
        await bs.stop()

    got = pcm(bytes(e2e.fake.received_audio), e2e.fake.input_format["type"].split("/")[1])
    found = segment_match(pcm(source, "pcm16"), got)
    assert found >= 0.9, f"only {found:.0%} of the caller's speech reached the AI"
    hist = await e2e.ok("GetCallHistory", with_calls="true", rule_name="inbound")
    (good,) = hist["result"]
    assert good["finish_reason"] == "normal"
    assert good["calls"][0]["successful"] and good["calls"][0]["finish_reason"] == "normal"
    assert json.dumps(hist).count(API_KEY_MARKER) == 0


API_KEY_MARKER = "e2e-key"
