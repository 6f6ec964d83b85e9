"""FormatConverter tests: pass-through, transcodes, resampling, and real speech."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from gateway.errors import MediaError
from gateway.media import g711
from gateway.media.convert import FormatConverter
from gateway.media.format import (
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    PCMA_8K,
    PCMU_8K,
    AudioFormat,
    Encoding,
)
from tests.peers import require_files

SPEECH_GLOB = "/usr/share/asterisk/sounds/en/*.wav"


@pytest.fixture
def speech_files() -> list[str]:
    """Human speech recordings (asterisk-core-sounds-en-wav); CI fails without them."""
    return require_files(SPEECH_GLOB, "asterisk-core-sounds-en-wav")


def test_passthrough_same_format() -> None:
    c = FormatConverter(PCMU_8K, PCMU_8K)
    assert c.passthrough
    data = bytes(range(160))
    assert c.convert(data) is data
    assert not FormatConverter(PCMU_8K, PCMA_8K).passthrough


def test_law_transcode_without_resampling() -> None:
    c = FormatConverter(PCMU_8K, PCMA_8K)
    data = bytes(range(160))
    assert c.convert(data) == g711.ulaw_to_alaw(data)
    assert FormatConverter(PCMA_8K, PCMU_8K).convert(b"\xd5" * 160) == b"\xfe" * 160


@pytest.mark.parametrize(("src", "dst", "out_len"), [
    (PCMU_8K, PCM16_24K, 960), (PCMA_8K, PCM16_16K, 640), (PCM16_24K, PCMU_8K, 160),
    (PCM16_8K, PCMU_8K, 160), (PCMU_8K, PCM16_8K, 320), (PCM16_16K, PCMA_8K, 160),
])
def test_frame_sizes(src: AudioFormat, dst: AudioFormat, out_len: int) -> None:
    c = FormatConverter(src, dst)
    frame = src.silence()
    for _ in range(5):
        assert len(c.convert(frame)) == out_len


def test_unsupported_formats() -> None:
    with pytest.raises(MediaError):
        FormatConverter(AudioFormat(Encoding.PCM16, 8000, 2), PCMU_8K)
    with pytest.raises(MediaError):
        FormatConverter(PCMU_8K, AudioFormat(Encoding.PCM16, 0))
    with pytest.raises(MediaError):
        FormatConverter("pcmu", PCMU_8K)  # type: ignore[arg-type]


def _read_speech(path: str) -> np.ndarray:
    with wave.open(path) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def test_real_speech_survives_resample_round_trip(speech_files: list[str]) -> None:
    path = next((p for p in speech_files if p.endswith("demo-congrats.wav")), speech_files[0])
    x = _read_speech(path)[: 8000 * 5]
    up = FormatConverter(PCM16_8K, PCM16_24K)
    down = FormatConverter(PCM16_24K, PCM16_8K)
    y = b"".join(down.convert(up.convert(x[i:i + 160].tobytes())) for i in range(0, len(x), 160))
    y_arr = np.frombuffer(y, dtype=np.int16).astype(float)
    assert abs(len(y_arr) - len(x)) <= 2
    xf = x.astype(float)
    n = min(len(xf), len(y_arr))
    best = 0.0
    for lag in range(0, 40):  # the chain delays by a few ms
        a, b = xf[: n - lag], y_arr[lag:n]
        best = max(best, float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))))
    assert best >= 0.9


def test_real_speech_through_g711_and_24k(speech_files: list[str]) -> None:
    x = _read_speech(speech_files[0])[: 8000 * 3]
    to_ai = FormatConverter(PCMU_8K, PCM16_24K)
    to_call = FormatConverter(PCM16_24K, PCMA_8K)
    ulaw = g711.pcm16_to_ulaw(x.tobytes())
    alaw = b"".join(to_call.convert(to_ai.convert(ulaw[i:i + 160]))
                    for i in range(0, len(ulaw), 160))
    y = np.frombuffer(g711.alaw_to_pcm16(alaw), dtype=np.int16).astype(float)
    xf = x.astype(float)
    n = min(len(xf), len(y))
    best = max(
        float(np.dot(xf[: n - lag], y[lag:n])
              / np.sqrt(np.dot(xf[: n - lag], xf[: n - lag]) * np.dot(y[lag:n], y[lag:n])))
        for lag in range(40))
    assert best >= 0.9
