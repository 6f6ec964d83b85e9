"""Outbound: StartScenarios runs scenarios/outbound_ai.py, which dials a real sipp UAS
(-rtp_echo) and bridges it to the fake OpenAI Realtime server; failures and trunks."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.media.g711 import pcm16_to_ulaw
from gateway.server import Gateway
from tests.audio import best_alignment, pcm, speech
from tests.e2e.conftest import E2E, make_settings, shipped
from tests.e2e.helpers import session_id_of, wait_until
from tests.integration.sip_harness import SCENARIOS, sipp, wait_sipp_listening


async def history(e2e, hid: int) -> dict:
    hist = await e2e.ok("GetCallHistory", call_session_history_id=hid, with_calls="true")
    (sess,) = hist["result"]
    return sess


@pytest.mark.fake_mode("script")
async def test_start_scenarios_calls_sipp_and_bridges_audio_both_ways(e2e, tmp_path):
    rule_id = await e2e.rule_with("outbound", shipped("outbound_ai.py"), name="outbound")
    async with sipp(tmp_path, "-sn", "uas", "-rtp_echo") as uas:
        await wait_sipp_listening(uas.port)
        data = {"destination": f"sip:bot@127.0.0.1:{uas.port}", "callerId": "+15550001111"}
        started = await e2e.ok("StartScenarios", rule_id=rule_id,
                               script_custom_data=json.dumps(data))
        assert started["result"] == 1
        assert started["media_session_access_url"].startswith("http://127.0.0.1:")
        hid = started["call_session_history_id"]

        fake = e2e.fake
        await fake.wait_connected(10)
        await fake.wait_until(lambda: fake.output_format.get("type") == "audio/pcmu", timeout=5)
        source = speech("hello-world", "agent-pass")
        await fake.play_audio(pcm16_to_ulaw(source), chunk_ms=200)
        # sipp echoes what the gateway plays; the echo comes back to the AI
        await fake.wait_audio(len(source) // 2 + 8000 * 2, timeout=15)
        await fake.close_connection(1000, "done")  # the scenario hangs up on WebSocketClosed
        assert await uas.wait(20) == 0, uas.logs()

    ref = pcm(source, "pcm16")
    got = pcm(bytes(fake.received_audio), "pcmu")
    lag, r = best_alignment(ref, got)
    assert r >= 0.9 and lag >= 0, (r, lag)

    await wait_until(lambda: not e2e.gw.runtime.sessions, 10, "the session to end")
    sess = await history(e2e, hid)
    assert sess["finish_reason"] == "normal"
    (call,) = sess["calls"]
    assert call["successful"] and not call["incoming"]
    assert call["finish_reason"] == "normal"
    assert call["duration"] >= 4
    assert call["remote_number"] == "bot" or "bot" in call["remote_number"]


async def test_busy_callee_fails_with_486_and_cdr_says_busy(e2e, tmp_path):
    rule_id = await e2e.rule_with("outbound", shipped("outbound_ai.py"), name="outbound")
    async with sipp(tmp_path, "-sf", str(SCENARIOS / "uas_486.xml")) as uas:
        await wait_sipp_listening(uas.port)
        data = {"destination": f"sip:busy@127.0.0.1:{uas.port}", "callerId": "+15550001111"}
        started = await e2e.ok("StartScenarios", rule_id=rule_id,
                               script_custom_data=json.dumps(data))
        assert await uas.wait(20) == 0, uas.logs()  # it got our ACK for the 486
    await wait_until(lambda: not e2e.gw.runtime.sessions, 10, "the session to terminate")
    sess = await history(e2e, started["call_session_history_id"])
    (call,) = sess["calls"]
    assert call["finish_reason"] == "busy" and not call["successful"]
    assert e2e.fake.handshakes == []  # never reached the AI


TRUNK_SCRIPT = """
import json
events = []
def on_started(e):
    data = json.loads(VoxEngine.custom_data())
    call = VoxEngine.call_pstn(data["destination"], data["callerId"])
    call.add_event_listener(CallEvents.Failed, lambda ev: (events.append(("failed", ev.code)),
                                                             VoxEngine.terminate()))
    def connected(ev):
        events.append(("connected",))
        call.hangup()
    call.add_event_listener(CallEvents.Connected, connected)
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def test_call_pstn_through_trunk_with_digest_401(fake_ai, tmp_path):
    """call_pstn goes to VGW_SIP_TRUNK_URI with VGW_SIP_TRUNK_USER/PASSWORD (digest)."""
    async with sipp(tmp_path, "-sf", str(SCENARIOS / "uas_auth.xml")) as trunk:
        await wait_sipp_listening(trunk.port)
        settings = make_settings(tmp_path, sip_trunk_uri=f"sip:127.0.0.1:{trunk.port}",
                                 sip_trunk_user="u", sip_trunk_password="p")
        gw = Gateway(settings)
        await gw.start()
        try:
            async with httpx.AsyncClient(base_url=settings.http_base_url()) as http:
                e2e = E2E(gw, fake_ai, http, tmp_path)
                rule_id = await e2e.rule_with("pstn", TRUNK_SCRIPT, name="pstn")
                data = {"destination": "+1 (555) 123-4567", "callerId": "+15550001111"}
                started = await e2e.ok("StartScenarios", rule_id=rule_id,
                                       script_custom_data=json.dumps(data))
                sid = session_id_of(started["media_session_access_url"])
                # sipp: 401 ACKed, Authorization verified for u/p, 200, then our BYE
                assert await trunk.wait(20) == 0, trunk.logs()
                session = gw.runtime.find_session(sid)
                await session.wait_ended(10)
                assert session.namespace["events"] == [("connected",)], session.log_lines
                sess = await history(e2e, started["call_session_history_id"])
                assert sess["calls"][0]["successful"]
                assert sess["calls"][0]["remote_number"] == "+15551234567"
        finally:
            await gw.stop()
