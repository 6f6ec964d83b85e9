"""Audio helpers for tests: WAV I/O, G.711 decode, alignment by cross-correlation."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from gateway.media.g711 import alaw_to_pcm16, ulaw_to_pcm16

SOUNDS = Path("/usr/share/asterisk/sounds/en")


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono PCM16 samples (float64) and the sample rate of a WAV file."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, "PCM16 WAV expected"
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        if w.getnchannels() > 1:
            data = data.reshape(-1, w.getnchannels())[:, 0]
        return data, w.getframerate()


def write_wav(path: str | Path, pcm16: bytes, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16)


def speech(*names: str) -> bytes:
    """PCM16 8 kHz mono bytes of asterisk-core-sounds-en-wav recordings, concatenated."""
    out = b""
    for name in names:
        data, rate = read_wav(SOUNDS / f"{name}.wav")
        assert rate == 8000
        out += data.astype("<i2").tobytes()
    return out


def pcm(data: bytes, encoding: str) -> np.ndarray:
    """Samples of ``data`` in "pcmu", "pcma" or "pcm16"."""
    if encoding == "pcmu":
        data = ulaw_to_pcm16(data)
    elif encoding == "pcma":
        data = alaw_to_pcm16(data)
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def best_alignment(reference: np.ndarray, signal: np.ndarray) -> tuple[int, float]:
    """Lag of ``reference`` inside ``signal`` and the normalised correlation there.

    Returns (lag, r): ``signal[lag:lag+len(reference)]`` is where the reference sits
    and ``r`` is the Pearson correlation of the overlapping part (1.0 = identical).
    """
    n = len(reference) + len(signal)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size)), size)
    # lags 0..len(signal)-1 are positive shifts; negative shifts wrap to the end
    lags = np.concatenate([np.arange(0, len(signal)), np.arange(-len(reference) + 1, 0)])
    values = np.concatenate([corr[: len(signal)], corr[size - len(reference) + 1:]])
    lag = int(lags[int(np.argmax(values))])
    return lag, overlap_correlation(reference, signal, lag)


def overlap_correlation(reference: np.ndarray, signal: np.ndarray, lag: int) -> float:
    """Pearson correlation of reference vs signal shifted by ``lag`` over their overlap."""
    r0 = max(0, -lag)
    s0 = max(0, lag)
    m = min(len(reference) - r0, len(signal) - s0)
    if m <= 0:
        return 0.0
    a = reference[r0:r0 + m]
    b = signal[s0:s0 + m]
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den else 0.0


def xcorr(reference: np.ndarray, signal: np.ndarray) -> float:
    """Best normalised correlation of ``reference`` found anywhere in ``signal``."""
    return best_alignment(reference, signal)[1]


def segment_match(reference: np.ndarray, signal: np.ndarray, seg: int = 4000,
                  threshold: float = 0.9) -> float:
    """Fraction of the reference's voiced segments found in ``signal`` with correlation
    >= ``threshold`` (each ``seg`` samples, located independently).

    Robust to the small time shifts a jitter buffer makes when it conceals an
    underrun, which a single whole-signal alignment would punish.
    """
    voiced = [reference[i:i + seg] for i in range(0, len(reference) - seg + 1, seg)
              if np.abs(reference[i:i + seg]).max() > 1000]
    if not voiced:
        raise ValueError("reference has no voiced segment")
    hits = sum(best_alignment(v, signal)[1] >= threshold for v in voiced)
    return hits / len(voiced)
