"""Speech out and in through a real SIP leg (baresip): ``call.say`` (espeak-ng), a second
``say`` replacing the first, ``call.start_playback`` of a WAV file, then
``VoxEngine.create_asr`` (PocketSphinx) recognising what the caller says."""

from __future__ import annotations

import numpy as np

from tests.audio import SOUNDS, best_alignment, pcm, read_wav, speech, write_wav
from tests.e2e.baresip import Baresip
from tests.e2e.helpers import wait_until
from tests.e2e.test_cascade_e2e import espeak_8k, silence
from tests.peers import require_binary, require_files

FIRST = "This first sentence is long, and the second one replaces it before it is heard."
SECOND = "Welcome to the speech test. Please say something after the recording."

SCENARIO = '''
steps = []
FIRST = {first!r}
SECOND = {second!r}
WAV = {wav!r}

def on_call_alerting(e):
    call = e.call
    state = {{"step": "say"}}

    def on_finished(ev):
        if state["step"] == "say":
            steps.append("say finished")
            state["step"] = "playback"
            call.start_playback(WAV)
        elif state["step"] == "playback":
            steps.append("playback finished")
            state["step"] = "listen"
            asr = VoxEngine.create_asr(language="en-US")
            asr.add_event_listener(ASREvents.Result, on_result)
            call.send_media_to(asr)

    def on_result(ev):
        Logger.write(f"ASR heard: {{ev.text}} ({{ev.confidence}})")
        steps.append(("asr", ev.text))
        call.hangup()

    def on_connected(ev):
        call.say(FIRST)
        player = call.say(SECOND)   # replaces the first, as in VoxEngine
        steps.append(("player", player.id() != ""))

    call.add_event_listener(CallEvents.Connected, on_connected)
    call.add_event_listener(CallEvents.PlaybackFinished, on_finished)
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.answer()

VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call_alerting)
'''


async def test_say_playback_and_asr_through_a_sip_call(e2e, tmp_path):
    require_binary("espeak-ng")
    wav = require_files(str(SOUNDS / "hello-world.wav"), "asterisk-core-sounds-en-wav")[0]
    await e2e.rule_with("agent", SCENARIO.format(first=FIRST, second=SECOND, wav=wav),
                        name="speech")
    said = speech("auth-thankyou")
    caller = silence(9000) + said + silence(5000)  # talks once the prompts are over
    source = tmp_path / "caller.wav"
    write_wav(source, caller)
    bs = Baresip(tmp_path, source)
    try:
        await bs.dial(f"sip:agent@127.0.0.1:{e2e.sip_port}", timeout_s=30)
        await wait_until(lambda: e2e.gw.runtime.recent, 30, "the session to end")
    finally:
        await bs.stop()
    session = e2e.gw.runtime.recent[-1]
    log = "\n".join(session.log_lines)
    steps = session.namespace["steps"]
    assert steps[:3] == [("player", True), "say finished", "playback finished"], (steps, log)
    asr = [s for s in steps if isinstance(s, tuple) and s[0] == "asr"]
    assert asr and "thank you" in asr[0][1], (steps, log)
    assert "ASR heard: " in log

    (dec,) = bs.dumps("dec")
    heard, rate = read_wav(dec)
    assert rate == 8000
    second = await espeak_8k(SECOND)
    lag2, r2 = best_alignment(second, heard)
    hello = pcm(speech("hello-world"), "pcm16")
    lag3, r3 = best_alignment(hello, heard)
    first_tail = (await espeak_8k(FIRST))[8000:]  # a second into the replaced sentence
    _lag1, r1 = best_alignment(first_tail, heard)
    print(f"heard: second say r={r2:.3f} at {lag2 / 8000:.2f} s, playback r={r3:.3f} at "
          f"{lag3 / 8000:.2f} s, replaced first say r={r1:.3f}")
    assert r2 >= 0.9, "the caller did not hear the second say()"
    assert r3 >= 0.9, "the caller did not hear the playback"
    assert lag3 >= lag2 + len(second) - 800, "the playback began before the say() ended"
    assert r1 < 0.5, "the replaced say() was heard"
    assert np.abs(heard[lag2:lag2 + len(second)]).max() > 1000
