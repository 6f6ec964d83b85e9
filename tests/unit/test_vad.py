"""Turn detection (gateway/media/vad.py) on recorded speech: one start and one end per
utterance, the start window's audio handed over, nothing on silence or line noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from gateway.media.vad import TurnDetector
from tests.audio import speech
from tests.peers import require_files

RATE = 16000
FRAME = RATE * 2 // 50  # bytes in 20 ms


def speech16(name: str) -> bytes:
    require_files(f"/usr/share/asterisk/sounds/en/{name}.wav", "asterisk-core-sounds-en-wav")
    x = np.frombuffer(speech(name), "<i2").astype(np.float64)
    return np.clip(resample_poly(x, 2, 1), -32768, 32767).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(RATE * 2 * ms // 1000)


def run(det: TurnDetector, audio: bytes, chunk: int = FRAME) -> list[tuple[int, str, object]]:
    """Feed ``audio`` in ``chunk``-byte pieces; (frame index, kind, event) per event."""
    out, index = [], 0
    for pos in range(0, len(audio), chunk):
        for _frame, ev in det.feed(audio[pos:pos + chunk]):
            if ev is not None:
                out.append((index, ev.kind, ev))
            index += 1
    return out


def test_one_turn_per_utterance_with_its_start_audio() -> None:
    said = speech16("auth-thankyou")
    audio = silence(1000) + said + silence(1500)
    det = TurnDetector(RATE, start_ms=200, stop_ms=600)
    events = run(det, audio)
    assert [kind for _i, kind, _e in events] == ["start", "end"], events
    (i_start, _, start), (i_end, _, end) = events
    onset = 1000 // 20  # speech begins at frame 50 (within the recording's lead-in)
    assert onset <= i_start <= onset + 40
    # the start event carries pre-roll + start window, ending with the triggering frame
    assert len(start.audio) == (200 + 200) // 20 * FRAME
    tail = audio[(i_start + 1) * FRAME - len(start.audio):(i_start + 1) * FRAME]
    assert start.audio == tail
    # the end comes after the speech and the stop window, before the audio runs out
    speech_end = (1000 + len(said) // 32) // 20
    assert speech_end - 20 <= i_end <= speech_end + 600 // 20 + 5
    assert end.speech_ms == (i_end - i_start + 10) * 20  # start window + frames after it
    assert not det.speaking


@pytest.mark.parametrize("chunk", [1, 333, FRAME * 3 + 7])
def test_any_chunking_gives_the_same_turns(chunk: int) -> None:
    audio = silence(600) + speech16("vm-goodbye") + silence(1000)
    ref = [(i, k) for i, k, _ in run(TurnDetector(RATE), audio)]
    got = [(i, k) for i, k, _ in run(TurnDetector(RATE), audio, chunk)]
    assert got == ref and len(ref) == 2


def test_two_utterances_two_turns() -> None:
    audio = (silence(500) + speech16("auth-thankyou") + silence(1200)
             + speech16("vm-goodbye") + silence(1200))
    kinds = [k for _i, k, _e in run(TurnDetector(RATE), audio)]
    assert kinds == ["start", "end", "start", "end"]


def test_silence_and_line_noise_start_nothing() -> None:
    rng = np.random.default_rng(7)
    hiss = (rng.normal(0, 30, RATE * 3)).astype("<i2").tobytes()  # ~-60 dBFS noise
    assert run(TurnDetector(RATE), silence(3000)) == []
    assert run(TurnDetector(RATE), hiss) == []


def test_short_click_does_not_start_a_turn() -> None:
    said = speech16("auth-thankyou")
    burst = said[len(said) // 2:len(said) // 2 + 3 * FRAME]  # 60 ms of speech
    assert run(TurnDetector(RATE, start_ms=200), silence(500) + burst + silence(800)) == []


def test_8khz_and_bad_arguments() -> None:
    det = TurnDetector(8000)
    audio = bytes(8000) + speech("auth-thankyou") + bytes(16000)
    events = []
    for pos in range(0, len(audio), 320):
        events += [ev.kind for _f, ev in det.feed(audio[pos:pos + 320]) if ev]
    assert events == ["start", "end"]
    with pytest.raises(ValueError):
        TurnDetector(11025)
    with pytest.raises(ValueError):
        TurnDetector(RATE, aggressiveness=4)
    with pytest.raises(ValueError):
        TurnDetector(RATE, stop_ms=10)
