"""An in-memory ``CallLeg`` that records what the runtime asked of it (runtime unit tests)."""

from __future__ import annotations

import itertools

from gateway.media.format import PCMU_8K, AudioFormat, AudioFrame
from gateway.runtime.leg import LegListener

_ids = itertools.count(1)


class FakeLeg:
    """Implements the CallLeg protocol; tests drive the listener side by hand."""

    def __init__(self, *, incoming: bool = True, number: str = "agent", callerid: str = "alice",
                 headers: dict[str, str] | None = None, fmt: AudioFormat | None = PCMU_8K,
                 auto_answer: bool = True) -> None:
        self.id = f"leg{next(_ids)}"
        self.incoming = incoming
        self.number = number
        self.callerid = callerid
        self.display_name = ""
        self.headers = headers or {}
        self.media_format = fmt
        self.listener: LegListener | None = None
        self.actions: list[tuple] = []
        self.played: list[AudioFrame] = []
        self.auto_answer = auto_answer
        self._played_ms = 0.0
        self._queued_ms = 0.0
        self.ended = False

    async def ring(self) -> None:
        self.actions.append(("ring",))

    async def answer(self, headers=None) -> None:
        self.actions.append(("answer", headers))
        if self.auto_answer and self.listener:
            self.listener.leg_connected({})

    async def reject(self, code=486, reason=None, headers=None) -> None:
        self.actions.append(("reject", code))
        self.ended = True
        if self.listener:
            self.listener.leg_failed(code, reason or "", {})

    async def hangup(self, headers=None) -> None:
        self.actions.append(("hangup",))
        if not self.ended and self.listener:
            self.ended = True
            self.listener.leg_disconnected({}, by_remote=False)

    async def dial(self) -> None:
        self.actions.append(("dial",))

    def play(self, frame: AudioFrame) -> None:
        self.played.append(frame)
        self._queued_ms += frame.duration_ms

    def clear_playout(self) -> None:
        self.actions.append(("clear",))
        self._queued_ms = 0.0

    @property
    def played_ms(self) -> float:
        return self._played_ms

    @property
    def queued_ms(self) -> float:
        return self._queued_ms

    def send_digits(self, digits: str) -> None:
        self.actions.append(("digits", digits))

    async def start_early_media(self, headers=None) -> None:
        self.actions.append(("early_media", headers))

    async def refer(self, target: str, headers=None) -> None:
        self.actions.append(("refer", target, headers))

    async def send_message(self, text: str, headers=None) -> None:
        self.actions.append(("message", text))

    async def send_info(self, mime_type: str, body, headers=None) -> None:
        self.actions.append(("info", mime_type, body, headers))
