"""Scenario features over real SIP peers: DTMF to ToneReceived (sipp pcap), X- headers,
function calling through the OpenAI connector, and barge-in heard by baresip."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from gateway.media.g711 import pcm16_to_ulaw
from tests.audio import best_alignment, pcm, read_wav, speech, write_wav
from tests.e2e.baresip import Baresip
from tests.e2e.conftest import shipped
from tests.e2e.helpers import session_id_of, wait_until
from tests.integration.sip_harness import SCENARIOS, sipp, wait_sipp_listening

TONES = """
tones = []
alert_headers = {}
def on_alert(e):
    alert_headers.update(e.headers)
    call = e.call
    call.handle_tones(True)
    call.add_event_listener(CallEvents.ToneReceived, lambda ev: tones.append((ev.tone, ev.type)))
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.answer()
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""


async def test_rfc4733_dtmf_from_sipp_fires_tone_received(e2e, tmp_path):
    await e2e.rule_with("dtmf", TONES, name="dtmf")
    async with sipp(tmp_path, "-sf", str(SCENARIOS / "uac_dtmf.xml"), "-s", "dtmf",
                    remote=f"127.0.0.1:{e2e.sip_port}") as uac:
        assert await uac.wait(30) == 0, uac.logs()
    await wait_until(lambda: not e2e.gw.runtime.sessions, 10, "the session to end")
    (session,) = e2e.gw.runtime.recent
    assert session.namespace["tones"] == [("1", 1)]
    assert session.namespace["alert_headers"] == {"X-Test-Case": "dtmf"}


TOOLS = """
import json
results = []
def on_started(e):
    data = json.loads(VoxEngine.custom_data())
    call = VoxEngine.call_sip(data["destination"], "+15550001111")
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.add_event_listener(CallEvents.Failed, lambda ev: VoxEngine.terminate())

    async def on_connected(ev):
        ai = await OpenAI.create_realtime_api_client(tools=[{
            "type": "function", "name": "get_weather", "description": "weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
        VoxEngine.send_media_between(call, ai)

        def on_function(fe):
            args = json.loads(fe.data["arguments"])
            results.append((fe.data["name"], args))
            ai.conversation_item_create({
                "type": "function_call_output", "call_id": fe.data["call_id"],
                "output": json.dumps({"city": args["city"], "temp_c": 21})})
            ai.response_create()

        ai.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseFunctionCallArgumentsDone,
                              on_function)
        ai.add_event_listener(OpenAI.RealtimeAPIEvents.WebSocketClosed,
                              lambda ev: call.hangup())
    call.add_event_listener(CallEvents.Connected, on_connected)
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


@pytest.mark.fake_mode("script")
async def test_function_calling_from_a_scenario(e2e, tmp_path):
    rule_id = await e2e.rule_with("tools", TOOLS, name="tools")
    async with sipp(tmp_path, "-sn", "uas", "-rtp_echo") as uas:
        await wait_sipp_listening(uas.port)
        started = await e2e.ok("StartScenarios", rule_id=rule_id, script_custom_data=json.dumps(
            {"destination": f"sip:bot@127.0.0.1:{uas.port}"}))
        fake = e2e.fake
        await fake.wait_connected(10)
        call_id = await fake.function_call("get_weather", {"city": "Paris"})
        item = await fake.wait_for(
            "conversation.item.create", timeout=10,
            predicate=lambda ev: ev["item"].get("type") == "function_call_output")
        assert item["item"]["call_id"] == call_id
        assert json.loads(item["item"]["output"]) == {"city": "Paris", "temp_c": 21}
        await fake.wait_for("response.create", timeout=10)
        await fake.close_connection(1000, "bye")
        assert await uas.wait(20) == 0, uas.logs()
    session = e2e.gw.runtime.find_session(session_id_of(started["media_session_access_url"]))
    await session.wait_ended(10)
    assert session.namespace["results"] == [("get_weather", {"city": "Paris"})]


@pytest.mark.fake_mode("script")
async def test_barge_in_stops_playout_and_truncates_at_played_position(e2e, tmp_path):
    await e2e.rule_with("agent", shipped("inbound_ai.py"), name="inbound")
    caller_audio = tmp_path / "caller.wav"
    write_wav(caller_audio, speech("vm-intro"))  # 5.6 s, then baresip hangs up
    bs = Baresip(tmp_path, caller_audio)
    fake = e2e.fake
    ai_speech = speech("demo-thanks")[: 8000 * 2 * 3]  # 3 s of the AI talking
    try:
        await bs.dial(f"sip:agent@127.0.0.1:{e2e.sip_port}", timeout_s=20)
        await fake.wait_connected(10)
        await fake.wait_until(lambda: fake.output_format.get("type") == "audio/pcmu", timeout=5)
        await fake.play_audio(pcm16_to_ulaw(ai_speech), chunk_ms=200, finish=False)
        await asyncio.sleep(1.0)  # the caller hears about a second of it, then talks
        await fake.speech_started(audio_start_ms=1000)
        truncate = await fake.wait_for("conversation.item.truncate", timeout=5)
        await wait_until(lambda: not e2e.gw.runtime.sessions, 20, "the call to end")
    finally:
        await bs.stop()

    end_ms = truncate["audio_end_ms"]
    (dec,) = bs.dumps("dec")
    heard, _ = read_wav(dec)
    ref = pcm(pcm16_to_ulaw(ai_speech), "pcmu")  # what passthrough delivers, bit-exact
    lag, r = best_alignment(ref[:4000], heard)
    assert r > 0.99, r
    seg = heard[lag:lag + len(ref)]
    # 20 ms blocks of the AI's speech that carry sound: did the caller hear each one?
    # (baresip's G.711 decoder differs from ours by a couple of LSBs)
    voiced, heard_blocks = [], []
    for b in range(len(seg) // 160):
        want = ref[b * 160:(b + 1) * 160]
        if np.abs(want).max() > 300:
            voiced.append(b)
            heard_blocks.append(np.abs(seg[b * 160:(b + 1) * 160] - want).max() <= 16)
    assert heard_blocks[0], "the caller never heard the AI"
    first_miss = heard_blocks.index(False)
    assert not any(heard_blocks[first_miss:]), "audio resumed after barge-in"
    heard_until = (voiced[first_miss - 1] + 1) * 20  # end of the last voiced block heard
    missed_from = voiced[first_miss] * 20  # start of the first voiced block not heard
    print(f"caller heard voiced audio until {heard_until} ms, missed from {missed_from} ms; "
          f"truncate audio_end_ms={end_ms}")
    assert 500 < end_ms < 2500, "the AI's audio was not cut off by barge-in"
    # what was played (end_ms) lies where the caller's audio stopped, within 60 ms ...
    assert heard_until - 60 <= end_ms <= missed_from + 60
    # ... and the caller stopped hearing it within 100 ms of that point
    assert heard_until <= end_ms + 100
