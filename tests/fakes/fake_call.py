"""A call stand-in for connector tests: a media unit that emits frames like a call and
is a playout sink (``played_ms``, ``queued_ms``, ``clear_media_buffer``) like one."""

from __future__ import annotations

import asyncio

from gateway.media.format import AudioFormat, AudioFrame
from gateway.runtime.media_unit import MediaUnit


class FakeCall(MediaUnit):
    """Emits ``fmt`` frames (:meth:`push`) and records what it receives.

    ``played_ms`` is what the test says was played; ``queued_ms`` is what was
    received and not yet played; ``clear_media_buffer`` only counts (``cleared``).
    """

    def __init__(self, fmt: AudioFormat) -> None:
        super().__init__()
        self.output_format = fmt
        self.input_format = fmt
        self.received = bytearray()
        self.played_ms = 0.0
        self.cleared = 0
        self.hangups = 0
        self._got = asyncio.Event()

    @property
    def queued_ms(self) -> float:
        return max(self.input_format.duration_ms(len(self.received)) - self.played_ms, 0.0)

    def push(self, data: bytes) -> None:
        """Send ``data`` (in ``fmt``) to the units this call feeds."""
        self._emit(AudioFrame(data, self.output_format))

    def _on_media(self, frame: AudioFrame) -> None:
        self.received += frame.data
        self._got.set()

    def clear_media_buffer(self) -> None:
        self.cleared += 1

    def hangup(self) -> None:
        self.hangups += 1

    async def wait_received(self, nbytes: int, timeout: float = 5.0) -> None:
        """Wait until ``nbytes`` have been received in total."""
        async with asyncio.timeout(timeout):
            while len(self.received) < nbytes:
                self._got.clear()
                await self._got.wait()
