"""The offline cascade end to end: a real baresip call to the scenario ``vgw serve``
installs by default (scenarios/inbound_ai.py), with no OPENAI_API_KEY and no network.

baresip says an Asterisk prompt; PocketSphinx (worker processes) transcribes it, the
transcript lands in the session log, the rule-based responder answers, espeak-ng
speaks, and baresip records speech back: the greeting first, then the answer after the
caller's words. The CDR keeps the turn's latency figures.
"""

from __future__ import annotations

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
