"""RTP media of one SIP call leg: one RTP/RTCP port pair on asyncio datagram endpoints.

Standards:
- RTP/RTCP (RFC 3550): random initial sequence number, timestamp and SSRC (§5.1); an
  RTCP sender report with SDES CNAME about every 5 s (§6.2, §6.4.1); RTCP on RTP+1
  (RFC 3550 §11); RTCP arriving on the RTP port (RFC 5761) is recognised and ignored.
- RTP/AVP (RFC 3551): 20 ms G.711 frames, timestamp +160 per frame at 8000 Hz, marker
  bit on the first packet of a talkspurt.
- Symmetric RTP (RFC 4961): we send from the port we receive on, and the send address
  latches to the source of the first valid RTP packet (NAT traversal).
- DTMF (RFC 4733): telephone-events both ways, one event per digit with its own
  timestamp, duration updates every 20 ms, the end packet sent three times.

Timing: every leg runs on the one shared :class:`~gateway.media.clock.MediaClock`.
Each tick sends exactly one packet (queued audio, an RFC 4733 event packet, or filler
silence so NATs and echo peers keep flowing) and hands exactly one received 20 ms frame
to ``on_audio`` once the remote's audio has started (lost frames become silence).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable

from gateway.adapters.sip.rtp import (
    RTP_HEADER,
    RtpParseError,
    TelephoneEvent,
    build_rtcp_sdes,
    build_rtcp_sr,
    build_telephone_event,
    digit_to_event,
    is_rtcp,
    ntp_timestamp,
    parse_rtcp,
    parse_rtp,
    parse_telephone_event,
)
from gateway.adapters.sip.rtp_support import (
    PortAllocator,
    RateLimitedLog,
    RtpPortsExhausted,
    RtpStats,
    UdpEndpoint,
)
from gateway.errors import MediaError
from gateway.media.clock import MediaClock, get_media_clock
from gateway.media.format import FRAME_MS, AudioFormat, AudioFrame
from gateway.media.jitter import JitterBuffer
from gateway.media.playout import PlayoutBuffer

__all__ = ["PortAllocator", "RtpPortsExhausted", "RtpSession", "RtpStats"]

log = logging.getLogger(__name__)

#: RFC 3389 comfort noise: accepted (it takes a sequence slot) but carries no audio.
PT_COMFORT_NOISE = 13
RTCP_INTERVAL_TICKS = 5000 // FRAME_MS
#: Ticks to wait for the end packet of an RFC 4733 event before reporting the digit anyway.
DTMF_END_TIMEOUT_TICKS = 15
MAX_DTMF_DURATION_MS = 8000


class RtpSession:
    """Media of one call leg.

    Lifecycle: ``await RtpSession.open(host, ports)`` binds the even RTP port and
    RTP+1 for RTCP; ``start(...)`` once the SDP offer/answer is done; ``close()``.

    Attributes:
        local_host: the address the sockets are bound to.
        local_port: the RTP port (RTCP is ``local_port + 1``).
        ssrc: our 32-bit SSRC (random).
    """

    local_host: str
    local_port: int  # the RTP port (RTCP is local_port + 1)

    def __init__(self, host: str, port: int, ports: PortAllocator, clock: MediaClock,
                 jitter_depth: int) -> None:
        """Use :meth:`open`; this constructor binds nothing."""
        self.local_host = host
        self.local_port = port
        self._ports = ports
        self._clock = clock
        self._jitter_depth = jitter_depth
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._tick_handle: int | None = None
        self._closed = False
        # negotiated
        self._fmt: AudioFormat | None = None
        self._pt = 0
        self._dtmf_pt: int | None = None
        self._on_audio: Callable[[AudioFrame], None] | None = None
        self._on_dtmf: Callable[[str], None] | None = None
        self._remote: tuple[str, int] | None = None
        self._can_send = False
        self._latched = False
        self._rtcp_remote: tuple[str, int] | None = None
        self._rtcp_latched = False
        self._remote_ssrc: int | None = None
        # send state (RFC 3550 §5.1: random initial values)
        self.ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._spf = 160  # RTP timestamp units per 20 ms frame
        self._first_packet = True
        self._talking = False
        self._pkt = bytearray(12 + 160)
        self._payload = memoryview(self._pkt)[12:]
        self._playout: PlayoutBuffer | None = None
        self._jitter = JitterBuffer(jitter_depth)
        self._silence = b""
        # RFC 4733 send state: queue of (code, duration ticks, gap ticks)
        self._dtmf_queue: deque[tuple[int, int, int]] = deque()
        self._ev: list[int] | None = None  # [code, timestamp, packets sent, duration ticks, gap]
        self._ev_gap = 0
        # RFC 4733 receive state
        self._dtmf_fired: deque[tuple[int, int]] = deque(maxlen=8)
        self._dtmf_pending: tuple[tuple[int, int], str] | None = None
        self._dtmf_pending_ticks = 0
        # RTCP
        self._rtcp_countdown = RTCP_INTERVAL_TICKS
        self._cname = f"vgw-{secrets.token_hex(6)}@{host}"
        self._stats = RtpStats()
        self._ssrc_warned = False
        self._log_garbage = RateLimitedLog()
        self._log_callback = RateLimitedLog()
        self._log_socket = RateLimitedLog()
        self._warned_not_started = False

    # -- lifecycle -------------------------------------------------------
    @classmethod
    async def open(cls, host: str, ports: PortAllocator, *, jitter_depth: int = 3) -> RtpSession:
        """Bind an RTP/RTCP port pair on ``host`` from ``ports``.

        Tries the next even port when a bind fails (port used by another process).

        Args:
            host: local IP address to bind (e.g. "127.0.0.1", "0.0.0.0").
            ports: the allocator of the RTP port range.
            jitter_depth: receive jitter buffer depth in 20 ms frames.

        Raises:
            RtpPortsExhausted: no pair in the range could be reserved and bound.
        """
        loop = asyncio.get_running_loop()
        clock = get_media_clock()
        last_error: OSError | None = None
        for _ in range(ports.capacity):
            port = ports.acquire()
            session = cls(host, port, ports, clock, jitter_depth)
            try:
                rtp, _ = await loop.create_datagram_endpoint(
                    lambda s=session: UdpEndpoint(s._on_rtp_datagram, s._on_socket_error),
                    local_addr=(host, port))
            except OSError as exc:
                ports.release(port)
                last_error = exc
                continue
            try:
                rtcp, _ = await loop.create_datagram_endpoint(
                    lambda s=session: UdpEndpoint(s._on_rtcp_datagram, s._on_socket_error),
                    local_addr=(host, port + 1))
            except OSError as exc:
                rtp.close()
                ports.release(port)
                last_error = exc
                continue
            session._rtp = rtp  # type: ignore[assignment]
            session._rtcp = rtcp  # type: ignore[assignment]
            return session
        raise RtpPortsExhausted(f"could not bind an RTP port pair on {host}: {last_error}")

    def start(self, remote: tuple[str, int], payload_type: int, fmt: AudioFormat,
              dtmf_payload_type: int | None,
              on_audio: Callable[[AudioFrame], None],
              on_dtmf: Callable[[str], None]) -> None:
        """Start sending/receiving. ``on_audio`` gets 20 ms frames in ``fmt`` every tick
        (concealed silence for gaps once audio started); ``on_dtmf`` gets each RFC 4733
        digit once (at the end-bit packet). ``remote`` is replaced by the source address
        of the first valid packet received (symmetric RTP, RFC 4961).

        Args:
            remote: (host, port) from the SDP ``c=``/``m=`` lines.
            payload_type: the negotiated audio payload type (0 = PCMU, 8 = PCMA).
            fmt: the audio format of that payload type (PCMU_8K / PCMA_8K).
            dtmf_payload_type: the negotiated ``telephone-event/8000`` payload type,
                or None when the remote did not offer RFC 4733.
            on_audio: called on the media clock with each received 20 ms frame.
            on_dtmf: called with each received digit (``0-9 * # A-D``).

        Calling it again (re-INVITE) updates the parameters; a new format resets
        the buffers.

        Raises:
            MediaError: the session is closed, or ``fmt`` is not mono.
        """
        if self._closed:
            raise MediaError("RTP session is closed")
        if fmt.channels != 1:
            raise MediaError(f"RTP session supports mono audio only, got {fmt}")
        if fmt != self._fmt:
            self._fmt = fmt
            self._spf = fmt.frame_samples(FRAME_MS)
            fb = fmt.frame_bytes(FRAME_MS)
            self._pkt = bytearray(12 + fb)
            self._payload = memoryview(self._pkt)[12:]
            self._silence = fmt.silence(FRAME_MS)
            self._playout = PlayoutBuffer(fmt)
            self._jitter = JitterBuffer(self._jitter_depth, self._spf)
        self._pt = payload_type
        self._dtmf_pt = dtmf_payload_type
        self._on_audio = on_audio
        self._on_dtmf = on_dtmf
        self.update_remote(remote)
        if self._tick_handle is None:
            self._tick_handle = self._clock.subscribe(self._tick)

    def update_remote(self, remote: tuple[str, int]) -> None:
        """Send to ``remote`` (a re-INVITE changed the SDP) and latch again on the next
        valid packet. RTCP goes to ``remote`` port + 1 until RTCP is received.

        A remote of ``("0.0.0.0", port)`` (RFC 3264 §8.4 hold) or port 0 stops sending
        until a packet arrives to latch to, or the next ``update_remote``.
        """
        self._set_remote((remote[0], int(remote[1])))
        self._latched = False
        self._rtcp_remote = (remote[0], int(remote[1]) + 1)
        self._rtcp_latched = False

    def _set_remote(self, remote: tuple[str, int]) -> None:
        self._remote = remote
        # SDP hold (c=0.0.0.0) or a rejected stream (port 0): receive, do not send.
        self._can_send = bool(remote[1]) and remote[0] not in ("0.0.0.0", "::")

    async def close(self) -> None:
        """Stop ticking, close both sockets and release the port pair. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._tick_handle is not None:
            self._clock.unsubscribe(self._tick_handle)
            self._tick_handle = None
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                transport.close()
        self._rtp = self._rtcp = None
        self._ports.release(self.local_port)

    # -- state -----------------------------------------------------------
    @property
    def remote(self) -> tuple[str, int] | None:
        """Where RTP is sent (the SDP address, or the latched source address)."""
        return self._remote

    @property
    def latched(self) -> bool:
        """True once the send address follows the remote's source address (RFC 4961)."""
        return self._latched

    @property
    def format(self) -> AudioFormat | None:
        """The negotiated audio format, None before :meth:`start`."""
        return self._fmt

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def stats(self) -> RtpStats:
        """A snapshot of the session's counters."""
        s = self._stats
        jb = self._jitter
        return RtpStats(
            packets_sent=s.packets_sent, bytes_sent=s.bytes_sent,
            packets_received=s.packets_received, lost=jb.lost, late=jb.late,
            duplicates=jb.duplicates, reordered=jb.reordered, garbage=s.garbage,
            dtmf_received=s.dtmf_received, dtmf_sent=s.dtmf_sent, rtcp_sent=s.rtcp_sent,
            rtcp_received=s.rtcp_received, underruns=jb.underruns, resyncs=jb.resyncs)

    # -- playout -----------------------------------------------------------
    def play(self, frame: AudioFrame) -> None:
        """Queue audio for paced sending; any length, in the negotiated format.

        Raises:
            MediaError: ``frame.format`` is not the negotiated format (convert first).
        """
        pb = self._playout
        if pb is None:
            if not self._warned_not_started:
                self._warned_not_started = True
                log.warning("RTP %s:%d: audio played before start() is dropped",
                            self.local_host, self.local_port)
            return
        if frame.format != self._fmt:
            raise MediaError(f"RTP session plays {self._fmt}, got a {frame.format} frame")
        pb.write(frame.data)

    def clear_playout(self) -> None:
        """Drop all queued audio; the next packet sent is filler silence."""
        if self._playout is not None:
            self._playout.clear()

    @property
    def played_ms(self) -> float:
        """Milliseconds of queued (non-filler) audio sent so far; kept across clears."""
        return self._playout.played_ms if self._playout is not None else 0.0

    @property
    def queued_ms(self) -> float:
        """Milliseconds of audio waiting to be sent."""
        return self._playout.queued_ms if self._playout is not None else 0.0

    # -- DTMF out ----------------------------------------------------------
    def send_digits(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """Queue DTMF digits as RFC 4733 telephone-events.

        Each digit is one event: its packets carry the RTP timestamp of the event's first
        packet (marker bit set), the duration grows by 20 ms per packet, the end packet
        goes out three times; then ``gap_ms`` of audio before the next digit. Event
        packets replace the audio packets of their ticks; sequence numbers run on.

        Args:
            digits: characters from ``0-9 * # A-D``.
            duration_ms: tone length per digit (20-8000).
            gap_ms: pause between digits (>= 0).

        Raises:
            ValueError: a character is not a DTMF digit, or a bad duration/gap.
            MediaError: no telephone-event payload type was negotiated (before
                :meth:`start`, or the remote does not support RFC 4733).
        """
        codes = [digit_to_event(d) for d in digits]
        if not 0 < duration_ms <= MAX_DTMF_DURATION_MS:
            raise ValueError(f"duration_ms must be 1-{MAX_DTMF_DURATION_MS}, got {duration_ms}")
        if gap_ms < 0:
            raise ValueError(f"gap_ms must be >= 0, got {gap_ms}")
        if self._dtmf_pt is None:
            raise MediaError("no RFC 4733 telephone-event payload type negotiated")
        dur = max(1, -(-duration_ms // FRAME_MS))
        gap = -(-gap_ms // FRAME_MS)
        self._dtmf_queue.extend((code, dur, gap) for code in codes)

    @property
    def sending_digits(self) -> bool:
        """True while queued digits remain to be sent."""
        return bool(self._dtmf_queue) or self._ev is not None

    # -- the tick ------------------------------------------------------------
    def _tick(self) -> None:
        """One 20 ms period: send one packet, deliver one received frame."""
        if self._can_send and self._rtp is not None:
            if self._ev is not None or (self._dtmf_queue and self._ev_gap == 0):
                self._send_event()
            else:
                if self._ev_gap:
                    self._ev_gap -= 1
                self._send_audio(self._remote)  # type: ignore[arg-type]
        self._ts = (self._ts + self._spf) & 0xFFFFFFFF

        jb = self._jitter
        payload = jb.pop()
        if jb.started and self._on_audio is not None and self._fmt is not None:
            try:
                self._on_audio(AudioFrame(payload or self._silence, self._fmt))
            except Exception:
                self._log_callback(logging.ERROR, "RTP %s:%d: on_audio failed",
                                   self.local_host, self.local_port, exc_info=True)
        if self._dtmf_pending is not None:
            self._dtmf_pending_ticks -= 1
            if self._dtmf_pending_ticks <= 0:
                self._fire_dtmf(*self._dtmf_pending)

        self._rtcp_countdown -= 1
        if self._rtcp_countdown <= 0:
            self._rtcp_countdown = RTCP_INTERVAL_TICKS
            self._send_rtcp()

    def _send_audio(self, remote: tuple[str, int]) -> None:
        n = self._playout.read_into(self._payload)  # type: ignore[union-attr]
        marker = self._first_packet
        if n:
            if not self._talking:
                marker = True
                self._talking = True
        else:
            self._talking = False
        self._first_packet = False
        RTP_HEADER.pack_into(self._pkt, 0, 0x80, (0x80 if marker else 0) | self._pt,
                             self._seq, self._ts, self.ssrc)
        self._send(bytes(self._pkt), remote)

    def _send_event(self) -> None:
        ev = self._ev
        if ev is None:
            code, dur, gap = self._dtmf_queue.popleft()
            ev = self._ev = [code, self._ts, 0, dur, gap]
        ev[2] += 1
        code, ts, i, dur, gap = ev
        end = i >= dur
        payload = build_telephone_event(code, end=end, duration=min(i, dur) * self._spf)
        pkt = bytearray(16)
        RTP_HEADER.pack_into(pkt, 0, 0x80, (0x80 if i == 1 else 0) | self._dtmf_pt, self._seq,
                             ts, self.ssrc)
        pkt[12:] = payload
        self._send(bytes(pkt), self._remote)  # type: ignore[arg-type]
        if i >= dur + 2:  # the end packet has gone out three times
            self._ev = None
            self._ev_gap = gap
            self._stats.dtmf_sent += 1
            self._talking = False  # audio after the event starts a new talkspurt

    def _send(self, packet: bytes, remote: tuple[str, int]) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        try:
            self._rtp.sendto(packet, remote)  # type: ignore[union-attr]
        except OSError as exc:  # e.g. unreachable address
            self._on_socket_error(exc)
            return
        self._stats.packets_sent += 1
        self._stats.bytes_sent += len(packet) - 12

    def _send_rtcp(self) -> None:
        if self._rtcp is None or self._rtcp_remote is None or not self._can_send:
            return
        s = self._stats
        packet = build_rtcp_sr(self.ssrc, ntp_timestamp(time.time()), self._ts, s.packets_sent,
                               s.bytes_sent) + build_rtcp_sdes(self.ssrc, self._cname)
        try:
            self._rtcp.sendto(packet, self._rtcp_remote)
        except OSError as exc:
            self._on_socket_error(exc)
            return
        s.rtcp_sent += 1

    # -- receive -----------------------------------------------------------
    def _garbage(self, reason: str, addr: tuple[str, int]) -> None:
        self._stats.garbage += 1
        self._log_garbage(logging.WARNING, "RTP %s:%d: dropped datagram from %s: %s",
                          self.local_host, self.local_port, addr, reason)

    def _on_rtp_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._fmt is None or self._closed:
            return  # not started: nothing negotiated yet
        if len(addr) > 2:  # IPv6: (host, port, flowinfo, scope_id)
            addr = addr[:2]
        if is_rtcp(data):  # RFC 5761 multiplexed RTCP
            self._on_rtcp_datagram(data, addr)
            return
        try:
            pkt = parse_rtp(data)
        except RtpParseError as exc:
            self._garbage(str(exc), addr)
            return
        pt = pkt.payload_type
        event = None
        if pt == self._dtmf_pt:
            try:
                event = parse_telephone_event(pkt.payload)
            except RtpParseError as exc:
                self._garbage(str(exc), addr)
                return
        elif pt != self._pt and pt != PT_COMFORT_NOISE:
            self._garbage(f"unexpected payload type {pt}", addr)
            return
        if not self._latched:
            self._latched = True
            if addr != self._remote:
                log.info("RTP %s:%d: latched to %s (SDP said %s)", self.local_host,
                         self.local_port, addr, self._remote)
                self._set_remote(addr)
                if not self._rtcp_latched:
                    self._rtcp_remote = (addr[0], addr[1] + 1)
        elif addr != self._remote:
            self._garbage(f"source {addr} differs from latched {self._remote}", addr)
            return
        if pkt.ssrc != self._remote_ssrc:
            if self._remote_ssrc is not None:
                if not self._ssrc_warned:
                    self._ssrc_warned = True
                    log.warning("RTP %s:%d: remote SSRC changed %08x -> %08x; resyncing",
                                self.local_host, self.local_port, self._remote_ssrc, pkt.ssrc)
                self._jitter.reset()
            self._remote_ssrc = pkt.ssrc
        self._stats.packets_received += 1
        if pt == self._pt:
            self._jitter.push(pkt.sequence, pkt.timestamp, pkt.payload)
        else:  # RFC 4733 event or comfort noise: takes a sequence slot, plays as silence
            self._jitter.push(pkt.sequence, pkt.timestamp, None)
            if event is not None:
                self._on_event(pkt.timestamp, event)

    def _on_event(self, timestamp: int, ev: TelephoneEvent) -> None:
        digit = ev.digit
        if digit is None:
            return  # not DTMF (e.g. fax tones): ignored
        key = (timestamp, ev.event)
        if key in self._dtmf_fired:
            return  # retransmitted end packet or a late update
        pending = self._dtmf_pending
        if pending is not None and pending[0] != key:
            self._fire_dtmf(*pending)  # its end packets were lost
        if ev.end:
            self._fire_dtmf(key, digit)
        elif self._dtmf_pending is None:
            self._dtmf_pending = (key, digit)
            self._dtmf_pending_ticks = DTMF_END_TIMEOUT_TICKS + ev.duration // self._spf
        else:
            self._dtmf_pending_ticks = DTMF_END_TIMEOUT_TICKS

    def _fire_dtmf(self, key: tuple[int, int], digit: str) -> None:
        self._dtmf_pending = None
        self._dtmf_fired.append(key)
        self._stats.dtmf_received += 1
        if self._on_dtmf is not None:
            try:
                self._on_dtmf(digit)
            except Exception:
                log.exception("RTP %s:%d: on_dtmf failed", self.local_host, self.local_port)

    def _on_rtcp_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._fmt is None or self._closed:
            return
        if len(addr) > 2:
            addr = addr[:2]
        try:
            parse_rtcp(data)
        except RtpParseError as exc:
            self._garbage(f"RTCP: {exc}", addr)
            return
        self._stats.rtcp_received += 1
        if not self._rtcp_latched:
            self._rtcp_latched = True
            self._rtcp_remote = addr

    def _on_socket_error(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the remote is not listening (yet).
        self._log_socket(logging.INFO, "RTP %s:%d: socket error: %s", self.local_host,
                         self.local_port, exc)

    def __repr__(self) -> str:
        return (f"RtpSession({self.local_host}:{self.local_port} -> {self._remote}, "
                f"{self._fmt}, pt={self._pt})")
