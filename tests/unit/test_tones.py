"""Beep detection from bytes: the detector, then the Call's enable_beep_detection() events
(ToneDetected, BeepDetectionComplete) as VoxEngine names them."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gateway.media.dtmf_inband import dtmf_tone
from gateway.media.format import PCM16_16K, PCMA_8K, PCMU_8K, AudioFrame
from gateway.media.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16
from gateway.media.tones import Beep, BeepDetector, sine_tone
from gateway.runtime.manager import Runtime
from gateway.runtime.records import RuleMatch, ScenarioSource
from tests.audio import SOUNDS, read_wav
from tests.fakes.fake_leg import FakeLeg
from tests.fakes.memory_store import MemoryStore
from tests.peers import require_files

#: asterisk-core-sounds-en-wav prompts that are tones, not speech
TONE_PROMPTS = {"beep.wav", "beeperr.wav", "ascending-2tone.wav", "descending-2tone.wav",
                "confbridge-join.wav", "confbridge-leave.wav"}


def pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def silence(ms: float) -> np.ndarray:
    return np.zeros(round(ms * 8))


def detect(data: bytes, chunk: int = 320, **options) -> list[Beep]:
    det = BeepDetector(**options)
    found: list[Beep] = []
    for i in range(0, len(data), chunk):
        found += det.feed(data[i:i + chunk])
    return found + det.flush()


def ulaw_round_trip(data: bytes) -> bytes:
    return ulaw_to_pcm16(pcm16_to_ulaw(data))


# -- the detector ----------------------------------------------------------------------
@pytest.mark.parametrize("freq", [400, 440, 850, 1000, 1400, 2000, 2400])
def test_beep_frequency_and_duration(freq):
    sig = np.concatenate([silence(500), sine_tone(freq, 300), silence(300)])
    (beep,) = detect(ulaw_round_trip(pcm(sig)))
    assert beep.frequency == pytest.approx(freq, abs=3)
    assert beep.duration_ms == pytest.approx(300, abs=20)
    assert beep.start_ms == pytest.approx(500, abs=15)
    assert beep.level_dbm0 == pytest.approx(-10, abs=1)
    assert beep.ended


@pytest.mark.parametrize("chunk", [2, 66, 320, 1 << 20])
def test_any_chunk_size(chunk):
    sig = np.concatenate([silence(100), sine_tone(1000, 300), silence(300)])
    (beep,) = detect(pcm(sig), chunk=chunk)
    assert beep.frequency == pytest.approx(1000, abs=2)


def test_reported_when_the_tone_ends():
    det = BeepDetector()
    data = pcm(np.concatenate([silence(100), sine_tone(1000, 500), silence(300)]))
    reported = [i for i in range(0, len(data), 320) if det.feed(data[i:i + 320])]
    # the tone ends at 600 ms (byte 9600); one report, within 40 ms after that
    assert len(reported) == 1 and 9600 <= reported[0] + 320 <= 9600 + 40 * 16


def test_long_tone_reported_once_at_max_duration():
    det = BeepDetector(max_duration_ms=1000)
    data = pcm(np.concatenate([sine_tone(1400, 3000), silence(300)]))
    found = [(i, b) for i in range(0, len(data), 320) for b in det.feed(data[i:i + 320])]
    assert len(found) == 1
    at, beep = found[0]
    assert not beep.ended and beep.duration_ms == pytest.approx(1000, abs=20)
    assert at < 1100 * 16  # while the tone was still on
    assert det.flush() == []


def test_flush_reports_a_tone_cut_off_by_the_end_of_the_stream():
    det = BeepDetector()
    assert det.feed(pcm(np.concatenate([silence(100), sine_tone(800, 250)]))) == []
    (beep,) = det.flush()
    assert beep.frequency == pytest.approx(800, abs=2)


@pytest.mark.parametrize("offset", range(0, 80, 9))
def test_tone_of_the_minimum_duration_is_a_beep(offset):
    # any alignment of the tone to the 10 ms analysis grid
    sig = np.concatenate([silence(100 + offset / 8), sine_tone(1000, 100), silence(200)])
    (beep,) = detect(pcm(sig))
    assert beep.duration_ms == 100
    assert beep.start_ms == pytest.approx(100 + offset / 8, abs=5)


@pytest.mark.parametrize("duration", [40, 60, 80])
def test_too_short_tone_is_not_a_beep(duration):
    assert detect(pcm(np.concatenate([silence(100), sine_tone(1000, duration),
                                      silence(200)]))) == []


def test_min_duration_is_configurable():
    sig = pcm(np.concatenate([silence(100), sine_tone(1000, 150), silence(200)]))
    assert len(detect(sig)) == 1
    assert detect(sig, min_duration_ms=250) == []


@pytest.mark.parametrize("freq", [150, 3000])
def test_out_of_band_tones_are_ignored(freq):
    assert detect(pcm(np.concatenate([sine_tone(freq, 400), silence(200)]))) == []


def test_frequencies_filter():
    sig = pcm(np.concatenate([silence(100), sine_tone(1000, 300), silence(200)]))
    assert len(detect(sig, frequencies=[1400, 1000])) == 1
    assert detect(sig, frequencies=[1400]) == []


def test_dual_tones_and_sweeps_are_not_beeps():
    n = np.arange(8000)
    sweep = 7000 * np.sin(2 * np.pi * (500 * n / 8000 + 400 * (n / 8000) ** 2))  # 500->1300 Hz
    sig = np.concatenate([dtmf_tone("5", 400), silence(200), sweep, silence(200)])
    assert detect(pcm(sig)) == []


def test_two_beeps_are_two_reports():
    sig = np.concatenate([sine_tone(1000, 200), silence(200), sine_tone(1000, 200),
                          silence(200)])
    assert [round(b.frequency) for b in detect(pcm(sig))] == [1000, 1000]


@pytest.mark.parametrize("snr_db", [20, 15])
def test_beep_in_white_noise(snr_db):
    rng = np.random.default_rng(snr_db)
    sig = np.concatenate([silence(300), sine_tone(1000, 300, level_dbm0=-15), silence(300)])
    power = np.mean(sine_tone(1000, 300, level_dbm0=-15) ** 2)
    noise = rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(sig))
    (beep,) = detect(alaw_to_pcm16(pcm16_to_alaw(pcm(sig + noise))))
    assert beep.frequency == pytest.approx(1000, abs=3)
    assert beep.duration_ms == pytest.approx(300, abs=30)


def test_recorded_beep_prompt_is_detected():
    require_files(str(SOUNDS / "beep.wav"), "asterisk-core-sounds-en-wav")
    samples, _ = read_wav(SOUNDS / "beep.wav")
    (beep,) = detect(ulaw_round_trip(pcm(np.concatenate([samples, silence(100)]))))
    assert beep.frequency == pytest.approx(700, abs=5)
    assert beep.duration_ms >= 350


def test_speech_is_not_a_beep():
    """No beep in the asterisk-core-sounds-en-wav speech prompts (G.711-encoded)."""
    files = require_files(str(SOUNDS / "*.wav"), "asterisk-core-sounds-en-wav")
    found = {}
    for path in files:
        if path.rsplit("/", 1)[-1] in TONE_PROMPTS:
            continue
        samples, rate = read_wav(path)
        assert rate == 8000
        beeps = detect(ulaw_round_trip(pcm(samples)))
        if beeps:
            found[path] = beeps
    assert found == {}
    assert len(files) > 100


def test_bad_options():
    with pytest.raises(ValueError):
        BeepDetector(min_duration_ms=500, max_duration_ms=100)
    with pytest.raises(ValueError):
        BeepDetector(min_frequency=3000, max_frequency=2000)
    with pytest.raises(ValueError):
        BeepDetector(frequencies=[0])


# -- Call: enable_beep_detection -------------------------------------------------------
async def start_call(fmt=PCMU_8K):
    store = MemoryStore()
    match = RuleMatch(1, 1, "app", 1, "rule", [ScenarioSource(0, "s0", "seen = []")])
    rt = Runtime(store, "http://127.0.0.1:8080")
    started = await rt.start_scenarios(match, None)
    session = rt.sessions[started.session_id]
    call = session.add_call(FakeLeg(fmt=fmt))
    seen = session.namespace["seen"]
    for name in ("ToneDetected", "BeepDetectionComplete", "BeepDetectionError"):
        call.add_event_listener(f"CallEvents.{name}",
                                lambda e, name=name: seen.append((name, e.to_dict())))
    return rt, call, seen


def feed(call, samples: np.ndarray, fmt=PCMU_8K) -> None:
    data = pcm(samples)
    data += bytes(-len(data) % 320)
    encode = pcm16_to_ulaw if fmt is PCMU_8K else pcm16_to_alaw
    for i in range(0, len(data), 320):
        call.leg_audio(AudioFrame(encode(data[i:i + 320]), fmt))


def payload(event: dict) -> dict:
    return {k: v for k, v in event.items() if k not in ("call", "name", "event_name")}


@pytest.mark.parametrize("fmt", [PCMU_8K, PCMA_8K])
async def test_beep_fires_tone_detected_then_complete(fmt):
    rt, call, seen = await start_call(fmt)
    feed(call, np.concatenate([sine_tone(1000, 300), silence(300)]), fmt)
    assert seen == []  # detection is off: nothing decoded
    call.enable_beep_detection({"timeout": 30_000})
    feed(call, np.concatenate([silence(200), sine_tone(1000, 300), silence(300)]), fmt)
    (tone_name, tone), (done_name, done) = seen
    assert tone_name == "ToneDetected" and done_name == "BeepDetectionComplete"
    assert tone["call"] is call
    assert payload(tone) == {"tone": "beep", "VoicemailTone": True, "ProgressTone": False,
                             "frequency": pytest.approx(1000, abs=3),
                             "duration": pytest.approx(300, abs=20)}
    assert payload(done) == {"frequencies": [pytest.approx(1000, abs=3)], "timeout": None,
                             "frequency": tone["frequency"], "duration": tone["duration"]}
    # detection ended with the beep: the next one is not reported
    feed(call, np.concatenate([sine_tone(1000, 300), silence(300)]), fmt)
    assert len(seen) == 2
    await rt.stop()


async def test_frequencies_parameter_filters_beeps():
    rt, call, seen = await start_call()
    call.enable_beep_detection(frequencies=[1400])
    feed(call, np.concatenate([sine_tone(1000, 300), silence(300)]))
    assert seen == []
    feed(call, np.concatenate([sine_tone(1400, 300), silence(300)]))
    assert [name for name, _ in seen] == ["ToneDetected", "BeepDetectionComplete"]
    await rt.stop()


async def test_timeout_completes_without_a_beep():
    rt, call, seen = await start_call()
    call.enable_beep_detection(timeout=50)
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    ((name, event),) = seen
    assert name == "BeepDetectionComplete"
    assert event["frequencies"] is None and event["timeout"] is True
    feed(call, np.concatenate([sine_tone(1000, 300), silence(300)]))
    assert len(seen) == 1
    await rt.stop()


async def test_disable_completes_with_timeout_false():
    rt, call, seen = await start_call()
    call.disable_beep_detection()  # not running: nothing
    assert seen == []
    call.enable_beep_detection(timeout=60_000)
    call.disable_beep_detection()
    ((name, event),) = seen
    assert name == "BeepDetectionComplete" and event["timeout"] is False
    feed(call, np.concatenate([sine_tone(1000, 300), silence(300)]))
    assert len(seen) == 1
    await rt.stop()


async def test_audio_that_cannot_be_analysed_is_a_beep_detection_error():
    rt, call, seen = await start_call(PCM16_16K)
    call.enable_beep_detection()
    call.leg_audio(AudioFrame(bytes(640), PCM16_16K))
    ((name, event),) = seen
    assert name == "BeepDetectionError" and "pcm16/16000" in event["reason"]
    await rt.stop()


async def test_bad_parameters_and_ended_call():
    rt, call, _ = await start_call()
    with pytest.raises(ValueError):
        call.enable_beep_detection({"timeout": -1})
    with pytest.raises(ValueError):
        call.enable_beep_detection({"frequency": 1000})
    call.hangup()
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        call.enable_beep_detection()
    await rt.stop()
