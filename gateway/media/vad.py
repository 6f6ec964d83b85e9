"""Turn detection on caller audio with WebRTC's voice activity detector.

:class:`TurnDetector` takes PCM16 mono at 8, 16, 32 or 48 kHz in chunks of any
length, classifies each 20 ms frame with ``webrtcvad`` (package
``webrtcvad-wheels``; ~3 us a frame) and turns the per-frame decisions into
speech turns with two windows, as py-webrtcvad's example and LiveKit's
``silero`` VAD do:

* **start window**: a turn starts once ``start_ratio`` of the last ``start_ms``
  of frames are voiced; the turn's audio then begins with that whole window
  (plus ``preroll_ms`` before it), so the first syllable is not lost;
* **stop window**: a turn ends once ``stop_ratio`` of the last ``stop_ms`` of
  frames are unvoiced.

Every frame is reported back with the state it left the detector in, so a
caller can act on the very frame that completed the start window (barge-in
within one frame).
"""

from __future__ import annotations

import audioop
from collections import deque
from dataclasses import dataclass

from gateway.media.format import FRAME_MS

try:  # webrtcvad-wheels installs the module ``webrtcvad``
    import webrtcvad
except ImportError as exc:  # pragma: no cover - a dependency of the package
    raise ImportError("turn detection needs webrtcvad-wheels "
                      "(pip install webrtcvad-wheels)") from exc

#: Sample rates webrtcvad accepts.
VAD_RATES = (8000, 16000, 32000, 48000)


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """A change of turn state.

    Attributes:
        kind: ``"start"`` (the caller began speaking) or ``"end"`` (stopped).
        audio: for ``"start"``: the turn's audio so far (pre-roll + start window,
            PCM16); for ``"end"``: empty.
        speech_ms: for ``"end"``: how long the turn lasted (ms), stop window included.
    """

    kind: str
    audio: bytes = b""
    speech_ms: float = 0.0


class TurnDetector:
    """Streaming speech start/end detection.

    Args:
        sample_rate: Hz of the PCM16 mono input (8000, 16000, 32000 or 48000).
        aggressiveness: webrtcvad mode 0 (least) .. 3 (most aggressive filtering).
        start_ms: length of the start window (ms, multiple of 20).
        stop_ms: length of the stop window (ms, multiple of 20).
        start_ratio: share of voiced frames in the start window that starts a turn.
        stop_ratio: share of unvoiced frames in the stop window that ends a turn.
        preroll_ms: audio kept before the start window and handed over with it.
        min_rms: frames quieter than this (PCM16 RMS) count as unvoiced whatever
            webrtcvad says (line noise, comfort noise); 0 disables.

    Raises:
        ValueError: bad rate, mode or windows.
    """

    def __init__(self, sample_rate: int = 16000, *, aggressiveness: int = 2,
                 start_ms: int = 200, stop_ms: int = 600, start_ratio: float = 0.8,
                 stop_ratio: float = 0.9, preroll_ms: int = 200, min_rms: float = 100.0,
                 ) -> None:
        if sample_rate not in VAD_RATES:
            raise ValueError(f"webrtcvad takes {VAD_RATES} Hz, not {sample_rate}")
        if not 0 <= aggressiveness <= 3:
            raise ValueError("aggressiveness is 0..3")
        if start_ms < FRAME_MS or stop_ms < FRAME_MS:
            raise ValueError(f"windows must be at least {FRAME_MS} ms")
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate * 2 * FRAME_MS // 1000
        self._vad = webrtcvad.Vad(aggressiveness)
        self._start_n = max(1, start_ms // FRAME_MS)
        self._stop_n = max(1, stop_ms // FRAME_MS)
        self.start_ratio = start_ratio
        self.stop_ratio = stop_ratio
        self.min_rms = float(min_rms)
        self._window: deque[tuple[bytes, bool]] = deque(maxlen=self._start_n)
        self._preroll: deque[bytes] = deque(maxlen=max(0, preroll_ms // FRAME_MS))
        self._stop_window: deque[bool] = deque(maxlen=self._stop_n)
        self._carry = b""
        self._turn_frames = 0
        #: True while the caller is speaking (between "start" and "end").
        self.speaking = False

    def feed(self, pcm: bytes) -> list[tuple[bytes, TurnEvent | None]]:
        """Classify ``pcm`` (PCM16 mono, any length); returns, per complete 20 ms frame,
        ``(frame, event)`` where ``event`` is the :class:`TurnEvent` that frame
        caused, or None. A remainder shorter than a frame waits for the next call."""
        data = self._carry + pcm if self._carry else pcm
        n = len(data) - len(data) % self.frame_bytes
        self._carry = data[n:]
        out: list[tuple[bytes, TurnEvent | None]] = []
        fb = self.frame_bytes
        for pos in range(0, n, fb):
            frame = data[pos:pos + fb]
            out.append((frame, self._frame(frame)))
        return out

    def _voiced(self, frame: bytes) -> bool:
        if self.min_rms > 0 and audioop.rms(frame, 2) < self.min_rms:
            return False
        return self._vad.is_speech(frame, self.sample_rate)

    def _frame(self, frame: bytes) -> TurnEvent | None:
        voiced = self._voiced(frame)
        if not self.speaking:
            if len(self._window) == self._window.maxlen:
                self._preroll.append(self._window[0][0])
            self._window.append((frame, voiced))
            if (len(self._window) == self._window.maxlen
                    and sum(v for _f, v in self._window) >= self.start_ratio * self._start_n):
                self.speaking = True
                self._turn_frames = len(self._window)
                audio = b"".join(self._preroll) + b"".join(f for f, _v in self._window)
                self._window.clear()
                self._preroll.clear()
                self._stop_window.clear()
                return TurnEvent("start", audio=audio)
            return None
        self._turn_frames += 1
        self._stop_window.append(voiced)
        if (len(self._stop_window) == self._stop_window.maxlen
                and sum(not v for v in self._stop_window) >= self.stop_ratio * self._stop_n):
            self.speaking = False
            speech_ms = self._turn_frames * FRAME_MS
            self._stop_window.clear()
            self._turn_frames = 0
            return TurnEvent("end", speech_ms=speech_ms)
        return None

    def reset(self) -> None:
        """Forget everything (a new call)."""
        self._window.clear()
        self._preroll.clear()
        self._stop_window.clear()
        self._carry = b""
        self._turn_frames = 0
        self.speaking = False
