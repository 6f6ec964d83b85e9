"""The offline cascade end to end: a real baresip call to the scenario ``vgw serve``
installs by default (scenarios/inbound_ai.py), with no OPENAI_API_KEY and no network.

baresip says an Asterisk prompt; PocketSphinx (worker processes) transcribes it, the
transcript lands in the session log, the rule-based responder answers, espeak-ng
speaks, and baresip records speech back: the greeting first, then the answer after the
caller's words. The CDR keeps the turn's latency figures.
"""

from __future__ import annotations

import json

import numpy as np

from tests.audio import read_wav, speech, write_wav
from tests.e2e.baresip import Baresip
from tests.e2e.conftest import shipped
from tests.e2e.helpers import wait_until
from tests.peers import require_binary

RATE = 8000


def silence(ms: int) -> bytes:
    return bytes(RATE * 2 * ms // 1000)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


async def test_default_scenario_answers_offline_with_the_cascade(e2e, tmp_path, monkeypatch):
    require_binary("espeak-ng")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the fresh-install case
    monkeypatch.delenv("VGW_AI_GREETING", raising=False)
    await e2e.rule_with("agent", shipped("inbound_ai.py"), name="inbound")
    # the greeting lasts ~5 s; the caller waits, speaks, then listens for the answer
    said = speech("auth-thankyou")
    speak_at_ms = 7000
    caller = silence(speak_at_ms) + said + silence(6000)
    wav = tmp_path / "caller.wav"
    write_wav(wav, caller)
    bs = Baresip(tmp_path, wav)
    try:
        await bs.dial(f"sip:agent@127.0.0.1:{e2e.sip_port}", timeout_s=30)
        await wait_until(lambda: e2e.gw.runtime.recent, 30, "the session to end")
    finally:
        await bs.stop()
    session = e2e.gw.runtime.recent[-1]
    log = "\n".join(session.log_lines)
    assert "answering with the offline cascade" in log, log
    # the transcript is in the session log, and the responder answered it
    said_lines = [line for line in session.log_lines if "cascade: caller said" in line]
    assert said_lines, log
    assert "thank you" in said_lines[0], said_lines
    assert "cascade: agent said 'I heard: thank you." in log, log
    assert not e2e.fake.connected  # OpenAI was never called

    # what baresip heard: the greeting before the caller spoke, an answer after
    (dec,) = bs.dumps("dec")
    heard, rate = read_wav(dec)
    assert rate == RATE
    before = heard[RATE // 2:RATE * 5]
    spoke_end = (speak_at_ms + len(said) // 16) * RATE // 1000
    after = heard[spoke_end:spoke_end + RATE * 5]
    gap = heard[RATE * 6 + RATE // 2:speak_at_ms * RATE // 1000]  # greeting over, caller silent
    print(f"rms greeting {rms(before):.0f}, answer {rms(after):.0f}, quiet gap {rms(gap):.0f}")
    assert rms(before) > 500, "the caller did not hear the greeting"
    assert rms(after) > 500, "the caller did not hear the answer"
    assert rms(gap) < rms(after) / 5

    # the turn's latency is in the CDR, through GetCallHistory too
    (turn,) = session.record.voice_ai_turns
    assert turn["vendor"] == "cascade" and turn["turn"] == 1
    assert all(turn[k] is not None for k in ("speech_end_to_audio_ms", "stt_ms",
                                             "llm_first_token_ms", "tts_first_byte_ms"))
    hist = await e2e.ok("GetCallHistory")
    assert hist["result"][0]["voice_ai_turns"] == [turn]


# -- the cascade through the generic vendor scenario, with an OpenAI-compatible LLM ------
KEY = "sk-cascade-e2e"
TOOL = {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
TOOL_RESULT = {"city": "Paris", "temp_c": 21}
#: The answer after the tool result: ~8 s of espeak-ng speech, no comma in its first
#: sentence (the agent may start speaking a long first sentence at a comma).
SENTENCES = ["It is twenty one degrees in Paris today.",
             "The sky is clear and the wind is light.",
             "Tomorrow will be a little warmer with sunshine all day long and a warm evening."]


async def espeak_8k(text: str) -> np.ndarray:
    """espeak-ng's audio for ``text`` at 8 kHz, as G.711 μ-law carries it (the test's own
    synthesis and scipy resampling, independent of the gateway's)."""
    import asyncio

    from scipy.signal import resample_poly

    from gateway.media.g711 import pcm16_to_ulaw
    from tests.audio import pcm

    proc = await asyncio.create_subprocess_exec(
        "espeak-ng", "--stdout", "-v", "en-us", "--", text, stdout=asyncio.subprocess.PIPE)
    wav, _ = await proc.communicate()
    samples = np.frombuffer(wav[44:], "<i2").astype(np.float64)  # 22050 Hz mono
    down = resample_poly(samples, 320, 882)  # 22050 -> 8000
    return pcm(pcm16_to_ulaw(np.clip(np.round(down), -32768, 32767).astype("<i2").tobytes()),
               "pcmu")


async def test_cascade_with_an_llm_server_tools_and_barge_in(e2e, tmp_path):
    """The generic scenario (scenarios/inbound_voice_ai.py, VENDOR = "cascade") with an
    OpenAI-compatible LLM server: the caller's words reach the LLM as a transcript, the
    LLM's tool call round-trips through the scenario, the caller hears the spoken answer
    (correlated with espeak-ng's own rendering), and talking over it cuts it short."""
    require_binary("espeak-ng")
    from tests.e2e.test_vendors_e2e import heard_answer
    from tests.fakes.fake_chat_completions import FakeChatCompletions

    async with FakeChatCompletions(api_key=KEY) as llm:
        llm.reply_tool_call(TOOL["name"], {"city": "Paris"})
        llm.reply_text(" ".join(SENTENCES))
        # (later requests get the fake's echo answer)
        config = (f'VENDOR = "cascade"\nOPTIONS = {{"llm": {{"base_url": {llm.base_url!r}, '
                  f'"api_key": {KEY!r}, "model": "test-model"}}, "instructions": "Be brief.", '
                  f'"greeting": "", "tools": [{TOOL!r}]}}\n'
                  'TOOL_HANDLERS = {"get_weather": lambda args: '
                  '{"city": args["city"], "temp_c": 21}}\n')
        await e2e.rule_with("agent", config, shipped("inbound_voice_ai.py"), name="cascade_llm")
        first, interrupt = speech("auth-thankyou"), speech("vm-goodbye")
        caller = silence(2000) + first + silence(4500) + interrupt + silence(3000)
        wav = tmp_path / "caller.wav"
        write_wav(wav, caller)
        bs = Baresip(tmp_path, wav)
        try:
            await bs.dial(f"sip:agent@127.0.0.1:{e2e.sip_port}", timeout_s=30)
            await wait_until(lambda: e2e.gw.runtime.recent, 30, "the session to end")
        finally:
            await bs.stop()
        requests = list(llm.requests)
        invalid = list(llm.invalid_received) + list(llm.invalid_sent)

    session = e2e.gw.runtime.recent[-1]
    log = "\n".join(session.log_lines)
    assert invalid == [], invalid
    # the transcript went to the LLM; the tool call went through the scenario and back
    assert len(requests) >= 2, log
    user = [m for m in requests[0]["messages"] if m["role"] == "user"]
    assert user and "thank you" in user[-1]["content"], requests[0]["messages"]
    assert requests[0]["tools"][0]["function"]["name"] == "get_weather"
    assert session.namespace["tool_calls"] == [("get_weather", {"city": "Paris"})], log
    tool_msgs = [m for m in requests[1]["messages"] if m["role"] == "tool"]
    assert [json.loads(m["content"]) for m in tool_msgs] == [TOOL_RESULT]

    # the caller heard the spoken answer, cut short when they talked over it
    ref = np.concatenate([await espeak_8k(s) for s in SENTENCES])
    (dec,) = bs.dumps("dec")
    heard, rate = read_wav(dec)
    assert rate == RATE
    h = heard_answer(ref, heard)
    interrupt_at = (2000 + len(first) // 16 + 4500) * RATE // 1000
    print(f"cascade: caller heard the answer with r={h['r']:.3f}, voiced until "
          f"{h['heard_until_ms']} of {h['voiced_end_ms']} ms ({h['heard_before']:.0%} before); "
          f"answer started at {h['start'] / RATE:.2f} s, caller interrupted at "
          f"{interrupt_at / RATE:.2f} s")
    assert h["r"] >= 0.9, f"the caller did not hear the answer (r={h['r']:.3f})"
    assert h["heard_before"] >= 0.9, h
    assert 300 <= h["heard_until_ms"] <= h["voiced_end_ms"] - 1000, h
    assert h["heard_after"] <= 2, f"the answer resumed after barge-in: {h}"
    # it was cut at the caller's words: after the VAD start window (200 ms) and the
    # jitter buffer, give or take the offset between baresip's send and receive clocks
    cut_at = h["start"] + h["heard_until_ms"] * RATE // 1000
    assert interrupt_at - RATE // 5 <= cut_at <= interrupt_at + RATE * 8 // 10, (
        cut_at / RATE, interrupt_at / RATE)
