"""Support pieces of the RTP session: the port allocator, counters, the asyncio
datagram endpoint and a rate-limited logger (RFC 3550 §11: RTP on even ports,
RTCP on RTP+1)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import MediaError

log = logging.getLogger("gateway.adapters.sip.rtp_session")

LOG_INTERVAL_S = 5.0


class RtpPortsExhausted(MediaError):
    """No free even port pair is left in the configured RTP port range."""


class PortAllocator:
    """Hands out even RTP ports (RTCP = +1) from [port_min, port_max].

    Ports are handed out round-robin, so a port just released is not reused at once
    (late packets of the old call do not reach the new one).

    Args:
        port_min: lowest port (rounded up to even).
        port_max: highest port that may be used (by an RTCP port).

    Raises:
        ValueError: the range holds no even port with its odd neighbour.
    """

    def __init__(self, port_min: int, port_max: int) -> None:
        first = port_min + (port_min & 1)
        self._ports = range(first, port_max, 2)  # p + 1 <= port_max
        if first < 1 or port_max > 65535 or len(self._ports) == 0:
            raise ValueError(f"RTP port range {port_min}-{port_max} holds no even/odd port pair")
        self._in_use: set[int] = set()
        self._cursor = 0

    @property
    def capacity(self) -> int:
        """Number of port pairs in the range."""
        return len(self._ports)

    @property
    def in_use(self) -> int:
        """Number of port pairs currently handed out."""
        return len(self._in_use)

    def acquire(self) -> int:
        """Reserve the next free even port (the caller binds it and port + 1).

        Raises:
            RtpPortsExhausted: every pair in the range is in use.
        """
        n = len(self._ports)
        for i in range(n):
            port = self._ports[(self._cursor + i) % n]
            if port not in self._in_use:
                self._cursor = (self._cursor + i + 1) % n
                self._in_use.add(port)
                return port
        raise RtpPortsExhausted(
            f"all {n} RTP port pairs in {self._ports.start}-{self._ports.stop} are in use")

    def release(self, port: int) -> None:
        """Return a port pair; releasing a port not in use is a no-op."""
        self._in_use.discard(port)


@dataclass(slots=True)
class RtpStats:
    """Counters of one RTP session (a snapshot; see :attr:`RtpSession.stats`).

    Attributes:
        packets_sent: RTP packets sent (audio, filler and RFC 4733).
        bytes_sent: RTP payload octets sent.
        packets_received: valid RTP packets accepted (audio, DTMF, comfort noise).
        lost: frames concealed with silence (packet missing at its playout time).
        late: packets that arrived after their playout time.
        duplicates: packets received twice.
        reordered: packets that arrived out of order but in time.
        garbage: datagrams dropped: unparsable, unknown payload type, wrong source.
        dtmf_received: digits reported through ``on_dtmf``.
        dtmf_sent: digits fully sent (end packets included).
        rtcp_sent: RTCP compound packets sent.
        rtcp_received: valid RTCP packets received.
        underruns: ticks when the jitter buffer was empty while playing.
        resyncs: times the receive sequence restarted (new SSRC or sequence jump).
    """

    packets_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    reordered: int = 0
    garbage: int = 0
    dtmf_received: int = 0
    dtmf_sent: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    underruns: int = 0
    resyncs: int = 0


class UdpEndpoint(asyncio.DatagramProtocol):
    """Thin asyncio adapter: hands datagrams to the session, never raises."""

    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None],
                 on_error: Callable[[Exception], None]) -> None:
        self._on_datagram = on_datagram
        self._on_error = on_error

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._on_datagram(data, addr)
        except Exception:
            log.exception("RTP datagram from %s could not be handled", addr)

    def error_received(self, exc: Exception) -> None:
        self._on_error(exc)


class RateLimitedLog:
    """Logs the first event, then at most one summary line per interval."""

    __slots__ = ("_next", "_suppressed")

    def __init__(self) -> None:
        self._next = 0.0
        self._suppressed = 0

    def __call__(self, level: int, msg: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += f" ({self._suppressed} similar suppressed)"
        self._suppressed = 0
        self._next = now + LOG_INTERVAL_S
        log.log(level, msg, *args, exc_info=exc_info)
