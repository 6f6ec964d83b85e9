"""CONTRACT STUB (owned by the media/RTP helper, who replaces this file).

One RTP/RTCP port pair for one call leg: symmetric RTP, jitter buffer in, paced
playout out on the shared 20 ms media clock, RFC 4733 DTMF both ways.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.media.format import AudioFormat, AudioFrame


class RtpSession:
    """Media of one call leg.

    Lifecycle: ``await RtpSession.open(host, ports)`` binds the even RTP port and
    RTP+1 for RTCP; ``start(...)`` once the SDP offer/answer is done; ``close()``.
    """

    local_host: str
    local_port: int  # the RTP port (RTCP is local_port + 1)

    @classmethod
    async def open(cls, host: str, ports: PortAllocator, *, jitter_depth: int = 3) -> RtpSession:
        raise NotImplementedError

    def start(self, remote: tuple[str, int], payload_type: int, fmt: AudioFormat,
              dtmf_payload_type: int | None,
              on_audio: Callable[[AudioFrame], None],
              on_dtmf: Callable[[str], None]) -> None:
        """Start sending/receiving. ``on_audio`` gets 20 ms frames in ``fmt`` every tick
        (concealed silence for gaps once audio started); ``on_dtmf`` gets each RFC 4733
        digit once (at the end-bit packet). ``remote`` is replaced by the source address
        of the first valid packet received (symmetric RTP, RFC 4961)."""
        raise NotImplementedError

    def update_remote(self, remote: tuple[str, int]) -> None:
        raise NotImplementedError

    def play(self, frame: AudioFrame) -> None:
        raise NotImplementedError

    def clear_playout(self) -> None:
        raise NotImplementedError

    @property
    def played_ms(self) -> float:
        raise NotImplementedError

    @property
    def queued_ms(self) -> float:
        raise NotImplementedError

    def send_digits(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PortAllocator:
    """Hands out even RTP ports (RTCP = +1) from [port_min, port_max]."""

    def __init__(self, port_min: int, port_max: int) -> None:
        raise NotImplementedError
