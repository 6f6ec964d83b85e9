"""Tones through a real SIP leg: the real baresip calls the gateway and plays a WAV
(speech, then in-band DTMF or an answering-machine beep) over G.711 RTP.

- in-band DTMF "1 5 9 #" reaches the scenario as CallEvents.ToneReceived type 2, in
  order, once each (baresip sends no RFC 4733 for audio it plays);
- a 1000 Hz beep after speech gives CallEvents.ToneDetected and
  CallEvents.BeepDetectionComplete once, and the speech before it gives nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.media.dtmf_inband import dtmf_tone
from gateway.media.tones import sine_tone
from tests.audio import SOUNDS, speech, write_wav
from tests.e2e.baresip import Baresip
from tests.e2e.helpers import wait_until
from tests.peers import require_files

DTMF_SCENARIO = """
tones = []
def on_alert(e):
    call = e.call
    call.handle_tones(True)
    call.add_event_listener(CallEvents.ToneReceived, lambda ev: tones.append((ev.tone, ev.type)))
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.answer()
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""

BEEP_SCENARIO = """
events = []
def on_alert(e):
    call = e.call
    def on_connected(ev):
        call.enable_beep_detection({"timeout": 30000})
    def on_tone(ev):
        events.append(("ToneDetected", ev.tone, ev.VoicemailTone, ev.ProgressTone,
                       ev.frequency, ev.duration))
    def on_complete(ev):
        events.append(("BeepDetectionComplete", ev.frequencies, ev.timeout))
    call.add_event_listener(CallEvents.Connected, on_connected)
    call.add_event_listener(CallEvents.ToneDetected, on_tone)
    call.add_event_listener(CallEvents.BeepDetectionComplete, on_complete)
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.answer()
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""


def pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def silence(ms: float) -> bytes:
    return bytes(round(ms * 8) * 2)


async def call_with(e2e, tmp_path, script: str, number: str, audio: bytes):
    """baresip dials ``number`` playing ``audio``; returns the ended session."""
    await e2e.rule_with(number, script, name=number)
    wav = tmp_path / "caller.wav"
    write_wav(wav, audio)
    bs = Baresip(tmp_path, wav)
    try:
        await bs.dial(f"sip:{number}@127.0.0.1:{e2e.sip_port}", timeout_s=30)
        await wait_until(lambda: e2e.gw.runtime.recent and not e2e.gw.runtime.sessions, 30,
                         "baresip to play its file and hang up")
    finally:
        await bs.stop()
    (session,) = e2e.gw.runtime.recent
    return session


@pytest.fixture
def voice() -> bytes:
    require_files(str(SOUNDS / "hello-world.wav"), "asterisk-core-sounds-en-wav")
    return speech("hello-world")


async def test_inband_dtmf_from_baresip_is_tone_received_type_2(e2e, tmp_path, voice):
    digits = b"".join(pcm(dtmf_tone(d, 100)) + silence(150) for d in "159#")
    audio = silence(500) + voice + silence(300) + digits + voice + silence(500)
    session = await call_with(e2e, tmp_path, DTMF_SCENARIO, "dtmf", audio)
    tones = session.namespace["tones"]
    assert tones == [("1", 2), ("5", 2), ("9", 2), ("#", 2)], tones


async def test_voicemail_beep_from_baresip(e2e, tmp_path, voice):
    audio = (silence(500) + voice + silence(400) + pcm(sine_tone(1000, 300))
             + silence(1000))
    session = await call_with(e2e, tmp_path, BEEP_SCENARIO, "vm", audio)
    events = session.namespace["events"]
    assert [e[0] for e in events] == ["ToneDetected", "BeepDetectionComplete"], events
    _, tone, voicemail, progress, frequency, duration = events[0]
    assert (tone, voicemail, progress) == ("beep", True, False)
    assert frequency == pytest.approx(1000, abs=5)
    assert duration == pytest.approx(300, abs=40)
    _, frequencies, timeout = events[1]
    assert frequencies == [frequency] and timeout is None
