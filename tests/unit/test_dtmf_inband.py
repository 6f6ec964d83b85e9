"""In-band DTMF (ITU-T Q.23/Q.24) from bytes: the detector, then the Call's ToneReceived
type 2 and its de-duplication against RFC 4733 (type 1)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.media.dtmf_inband import DTMF_KEYS, InbandDtmfDetector, dtmf_tone
from gateway.media.format import PCMA_8K, PCMU_8K, AudioFrame
from gateway.media.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16
from gateway.runtime.manager import Runtime
from gateway.runtime.records import RuleMatch, ScenarioSource
from tests.audio import SOUNDS, read_wav
from tests.fakes.fake_leg import FakeLeg
from tests.fakes.memory_store import MemoryStore
from tests.peers import require_files

KEYS = "".join(DTMF_KEYS)  # 123A456B789C*0#D


def pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def silence(ms: float) -> np.ndarray:
    return np.zeros(round(ms * 8))


def keyed(digits: str, on_ms: float = 60, off_ms: float = 60, **tone) -> np.ndarray:
    """Silence, then each digit for ``on_ms`` followed by ``off_ms`` of silence."""
    parts = [silence(30)]
    for d in digits:
        parts += [dtmf_tone(d, on_ms, **tone), silence(off_ms)]
    return np.concatenate(parts)


def detect(data: bytes, chunk: int = 320, **options) -> str:
    """Digits found in PCM16 ``data`` fed ``chunk`` bytes at a time (320 = 20 ms)."""
    det = InbandDtmfDetector(**options)
    found: list[str] = []
    for i in range(0, len(data), chunk):
        found += det.feed(data[i:i + chunk])
    return "".join(found)


def ulaw_round_trip(data: bytes) -> bytes:
    return ulaw_to_pcm16(pcm16_to_ulaw(data))


# -- the detector ----------------------------------------------------------------------
def test_all_sixteen_digits_in_order():
    assert detect(pcm(keyed(KEYS))) == KEYS


@pytest.mark.parametrize("chunk", [2, 14, 80, 320, 1000, 1 << 20])
def test_any_chunk_size_gives_the_same_digits(chunk):
    assert detect(pcm(keyed("159#")), chunk=chunk) == "159#"


def test_numpy_input_and_lowercase_keys():
    det = InbandDtmfDetector()
    assert det.feed(keyed("abcd")) == list("ABCD")


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_g711_round_trip(codec):
    data = pcm(keyed(KEYS))
    decoded = (ulaw_round_trip(data) if codec == "ulaw"
               else alaw_to_pcm16(pcm16_to_alaw(data)))
    assert detect(decoded) == KEYS


@pytest.mark.parametrize("deviation", [-0.015, 0.015, -0.02, 0.02])
def test_frequency_within_tolerance_is_accepted(deviation):
    # ITU-T Q.24: +-1.5 % must operate (senders may be off by up to 1.8 %, Q.23)
    assert detect(pcm(keyed(KEYS, deviation=deviation))) == KEYS


@pytest.mark.parametrize("deviation", [-0.035, 0.035, -0.05, 0.05])
def test_frequency_outside_tolerance_is_rejected(deviation):
    # ITU-T Q.24: +-3.5 % must not operate
    assert detect(pcm(keyed(KEYS, deviation=deviation))) == ""


@pytest.mark.parametrize("twist_db", [-3.5, 0.0, 4.0, 7.5])
def test_twist_within_limits_is_accepted(twist_db):
    # column (high) tone up to 8 dB stronger (forward) or 4 dB weaker (reverse)
    assert detect(pcm(keyed(KEYS, twist_db=twist_db))) == KEYS


@pytest.mark.parametrize("twist_db", [-5.0, -8.0, 9.0, 12.0])
def test_twist_beyond_limits_is_rejected(twist_db):
    assert detect(pcm(keyed(KEYS, twist_db=twist_db))) == ""


@pytest.mark.parametrize("level", [-3.0, -20.0, -25.0])
def test_levels_down_to_minus_25_dbm0_operate(level):
    assert detect(ulaw_round_trip(pcm(keyed(KEYS, level_dbm0=level)))) == KEYS


def test_tones_below_the_minimum_level_do_not_operate():
    assert detect(ulaw_round_trip(pcm(keyed(KEYS, level_dbm0=-35.0)))) == ""


@pytest.mark.parametrize("offset", range(0, 40, 7))
def test_tone_of_40_ms_operates(offset):
    # any alignment of the tone to the 5 ms analysis grid
    sig = np.concatenate([silence(offset / 8), dtmf_tone("5", 40), silence(100)])
    assert detect(pcm(sig)) == "5"


@pytest.mark.parametrize("duration", [10, 20, 25])
@pytest.mark.parametrize("offset", range(0, 40, 7))
def test_too_short_tone_is_ignored(duration, offset):
    sig = np.concatenate([silence(offset / 8), dtmf_tone("5", duration), silence(100)])
    assert detect(pcm(sig)) == ""


@pytest.mark.parametrize("gap", [5, 10, 20])
def test_too_short_pause_is_bridged_into_one_press(gap):
    sig = np.concatenate([silence(20), dtmf_tone("7", 80), silence(gap), dtmf_tone("7", 80),
                          silence(100)])
    assert detect(pcm(sig)) == "7"


@pytest.mark.parametrize("gap", [40, 60])
def test_pause_of_40_ms_separates_two_presses(gap):
    sig = np.concatenate([silence(20), dtmf_tone("7", 80), silence(gap), dtmf_tone("7", 80),
                          silence(100)])
    assert detect(pcm(sig)) == "77"


def test_long_press_is_reported_once_at_its_start():
    det = InbandDtmfDetector()
    data = pcm(np.concatenate([dtmf_tone("#", 1000), silence(100)]))
    reported_at = [i for i in range(0, len(data), 320) if det.feed(data[i:i + 320])]
    # one report, within the first 60 ms of a 1 s press (not at its end)
    assert len(reported_at) == 1 and reported_at[0] < 60 * 16


def test_change_of_key_without_pause_reports_both():
    sig = np.concatenate([dtmf_tone("1", 80), dtmf_tone("2", 80), silence(100)])
    assert detect(pcm(sig)) == "12"


def test_current_is_the_press_in_progress():
    det = InbandDtmfDetector()
    det.feed(pcm(dtmf_tone("9", 100)))
    assert det.current == "9"
    det.feed(pcm(silence(100)))
    assert det.current is None
    det.feed(pcm(dtmf_tone("9", 100)))
    det.reset()
    assert det.current is None


@pytest.mark.parametrize("snr_db", [20, 15, 12])
def test_white_noise_at_moderate_snr(snr_db):
    rng = np.random.default_rng(snr_db)
    sig = keyed(KEYS, on_ms=60, off_ms=60)
    tone_power = np.mean(dtmf_tone("5", 100) ** 2)
    noise = rng.normal(0, np.sqrt(tone_power / 10 ** (snr_db / 10)), len(sig))
    assert detect(ulaw_round_trip(pcm(sig + noise))) == KEYS


def test_digits_between_speech_are_found():
    require_files(str(SOUNDS / "hello-world.wav"), "asterisk-core-sounds-en-wav")
    voice, _ = read_wav(SOUNDS / "hello-world.wav")
    sig = np.concatenate([voice, keyed("159#", on_ms=100, off_ms=100), voice])
    assert detect(ulaw_round_trip(pcm(sig))) == "159#"


def test_speech_does_not_talk_off():
    """No digit anywhere in the asterisk-core-sounds-en-wav prompts (about 26 minutes of
    a human voice, G.711-encoded as on a call)."""
    files = require_files(str(SOUNDS / "*.wav"), "asterisk-core-sounds-en-wav")
    found = {}
    for path in files:
        samples, rate = read_wav(path)
        assert rate == 8000
        digits = detect(ulaw_round_trip(pcm(samples)))
        if digits:
            found[path] = digits
    assert found == {}
    assert len(files) > 100


def test_bad_digit_for_the_generator():
    with pytest.raises(ValueError):
        dtmf_tone("x", 50)


# -- Call: ToneReceived type 2 and de-duplication ----------------------------------------
async def start_call(fmt=PCMU_8K):
    store = MemoryStore()
    match = RuleMatch(1, 1, "app", 1, "rule", [ScenarioSource(0, "s0", "tones = []")])
    rt = Runtime(store, "http://127.0.0.1:8080")
    started = await rt.start_scenarios(match, None)
    session = rt.sessions[started.session_id]
    call = session.add_call(FakeLeg(fmt=fmt))
    tones = session.namespace["tones"]
    call.add_event_listener("CallEvents.ToneReceived", lambda e: tones.append((e.tone, e.type)))
    return rt, call, tones


def frames(samples: np.ndarray, fmt=PCMU_8K) -> list[AudioFrame]:
    data = pcm(samples)
    data += bytes(-len(data) % 320)
    encode = pcm16_to_ulaw if fmt is PCMU_8K else pcm16_to_alaw
    return [AudioFrame(encode(data[i:i + 320]), fmt) for i in range(0, len(data), 320)]


@pytest.mark.parametrize("fmt", [PCMU_8K, PCMA_8K])
async def test_call_reports_inband_digits_as_type_2(fmt):
    rt, call, tones = await start_call(fmt)
    for f in frames(keyed("159#"), fmt):
        call.leg_audio(f)
    assert tones == []  # handle_tones is off: nothing decoded, nothing reported
    call.handle_tones(True)
    for f in frames(keyed("159#"), fmt):
        call.leg_audio(f)
    assert tones == [("1", 2), ("5", 2), ("9", 2), ("#", 2)]
    call.handle_tones(False)
    for f in frames(keyed("0"), fmt):
        call.leg_audio(f)
    assert len(tones) == 4
    await rt.stop()


async def test_rfc4733_after_inband_for_the_same_press_is_dropped():
    rt, call, tones = await start_call()
    call.handle_tones(True)
    press = frames(np.concatenate([dtmf_tone("5", 300), silence(200)]))
    for i, f in enumerate(press):
        call.leg_audio(f)
        if i == 14:  # RFC 4733 end of event at the end of the 300 ms press
            call.leg_tone("5", 1)
    assert tones == [("5", 2)]
    await rt.stop()


async def test_inband_after_rfc4733_for_the_same_press_is_dropped():
    rt, call, tones = await start_call()
    call.handle_tones(True)
    call.leg_audio(frames(silence(20))[0])
    call.leg_tone("3", 1)  # the event arrives ahead of the (jitter-buffered) audio
    for f in frames(np.concatenate([dtmf_tone("3", 60), silence(100)])):
        call.leg_audio(f)
    assert tones == [("3", 1)]
    await rt.stop()


async def test_separate_presses_and_other_keys_are_not_merged():
    rt, call, tones = await start_call()
    call.handle_tones(True)
    for f in frames(np.concatenate([dtmf_tone("5", 60), silence(300)])):
        call.leg_audio(f)
    call.leg_tone("5", 1)  # 300 ms after the in-band press ended: a new press
    call.leg_tone("6", 1)  # another key
    for f in frames(np.concatenate([dtmf_tone("6", 60), silence(300)])):
        call.leg_audio(f)  # in-band "6" right after the RFC 4733 "6": the same press
    call.leg_tone("7", 3)  # SIP INFO
    assert tones == [("5", 2), ("5", 1), ("6", 1), ("7", 3)]
    await rt.stop()
