"""RTP and RTCP packets and RFC 4733 telephone-events, sans-I/O.

- RTP fixed header, CSRC list, header extension and padding: RFC 3550 §5.1, §5.3.1.
- RTP/RTCP demultiplexing on one port: RFC 5761 §4 (second byte 192-223 is RTCP;
  SR=200, RR=201, SDES=202, BYE=203, APP=204).
- RTCP sender/receiver reports and SDES CNAME: RFC 3550 §6.4.1, §6.4.2, §6.5.1.
- DTMF telephone-event payload: RFC 4733 §2.3 (event codes 0-9, 10 = ``*``, 11 = ``#``,
  12-15 = ``A``-``D``; §3.2).

Everything here is a pure function of bytes; parse errors raise :class:`RtpParseError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from gateway.errors import MediaError

__all__ = [
    "DTMF_DIGITS",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "ReportBlock",
    "RtcpPacket",
    "RtcpReceiverReport",
    "RtcpSenderReport",
    "RtpPacket",
    "RtpParseError",
    "TelephoneEvent",
    "build_rtcp_rr",
    "build_rtcp_sdes",
    "build_rtcp_sr",
    "build_rtp",
    "build_telephone_event",
    "digit_to_event",
    "event_to_digit",
    "is_rtcp",
    "ntp_timestamp",
    "parse_rtcp",
    "parse_rtp",
    "parse_telephone_event",
]

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
_RTCP_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")  # SSRC, NTP, RTP ts, packet count, octet count
_REPORT = struct.Struct("!IIIIII")
_EVENT = struct.Struct("!BBH")

#: RFC 4733 §3.2 event codes, in order: the digit for code ``i`` is ``DTMF_DIGITS[i]``.
DTMF_DIGITS = "0123456789*#ABCD"
_DIGIT_CODES = {d: i for i, d in enumerate(DTMF_DIGITS)}
_DIGIT_CODES.update({d.lower(): i for i, d in enumerate(DTMF_DIGITS) if d.isalpha()})


class RtpParseError(MediaError):
    """Bytes that are not a valid RTP/RTCP packet or RFC 4733 payload."""


# ---------------------------------------------------------------------------- RTP


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1).

    Attributes:
        version: always 2.
        padding: the P bit; ``payload`` excludes the padding.
        extension: the X bit; the extension is in ``extension_profile``/``extension_data``.
        csrc: contributing sources (0-15 32-bit ids).
        marker: the M bit (first packet of a talkspurt or of an RFC 4733 event).
        payload_type: 7-bit payload type (0 = PCMU, 8 = PCMA, 96-127 dynamic).
        sequence: 16-bit sequence number.
        timestamp: 32-bit RTP timestamp (8000 units per second for G.711).
        ssrc: 32-bit synchronization source id.
        payload: the payload bytes (160 bytes = 20 ms of G.711).
        extension_profile: 16-bit "defined by profile" field of the header extension.
        extension_data: the header extension words (a multiple of 4 bytes).
    """

    version: int = RTP_VERSION
    padding: bool = False
    extension: bool = False
    csrc: tuple[int, ...] = ()
    marker: bool = False
    payload_type: int = 0
    sequence: int = 0
    timestamp: int = 0
    ssrc: int = 0
    payload: bytes = b""
    extension_profile: int = 0
    extension_data: bytes = b""

    def serialize(self) -> bytes:
        """The packet as bytes (without padding)."""
        return build_rtp(self.payload_type, self.sequence, self.timestamp, self.ssrc,
                         self.payload, marker=self.marker, csrc=self.csrc,
                         extension=(self.extension_profile, self.extension_data)
                         if self.extension else None)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet.

    Args:
        data: a whole UDP datagram.

    Returns:
        The packet; padding is stripped from ``payload``.

    Raises:
        RtpParseError: shorter than 12 bytes, version not 2, CSRC list, header extension
            or padding longer than the datagram, or a zero padding count.
    """
    n = len(data)
    if n < 12:
        raise RtpParseError(f"RTP packet too short: {n} bytes")
    b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    version = b0 >> 6
    if version != RTP_VERSION:
        raise RtpParseError(f"RTP version {version}, expected 2")
    cc = b0 & 0x0F
    pos = 12 + 4 * cc
    if pos > n:
        raise RtpParseError(f"RTP CSRC count {cc} exceeds packet length {n}")
    csrc = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    ext = bool(b0 & 0x10)
    profile = 0
    ext_data = b""
    if ext:
        if pos + 4 > n:
            raise RtpParseError("RTP header extension truncated")
        profile, words = struct.unpack_from("!HH", data, pos)
        pos += 4
        if pos + 4 * words > n:
            raise RtpParseError(f"RTP header extension length {words} exceeds packet")
        ext_data = bytes(data[pos:pos + 4 * words])
        pos += 4 * words
    end = n
    padded = bool(b0 & 0x20)
    if padded:
        pad = data[-1]
        if pad == 0 or pos + pad > n:
            raise RtpParseError(f"RTP padding count {pad} invalid for packet length {n}")
        end = n - pad
    return RtpPacket(version, padded, ext, csrc, bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc,
                     bytes(data[pos:end]), profile, ext_data)


def build_rtp(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes,
              *, marker: bool = False, csrc: tuple[int, ...] | list[int] = (),
              extension: tuple[int, bytes] | None = None) -> bytes:
    """Build one RTP packet (RFC 3550 §5.1), no padding.

    Args:
        payload_type: 0-127.
        sequence: sequence number (taken modulo 2**16).
        timestamp: RTP timestamp (taken modulo 2**32).
        ssrc: 32-bit source id.
        payload: the payload bytes.
        marker: the M bit.
        csrc: up to 15 contributing source ids.
        extension: ``(profile, data)`` for a header extension; ``data`` must be a
            multiple of 4 bytes.

    Raises:
        ValueError: out-of-range payload type, too many CSRCs, misaligned extension.
    """
    if not 0 <= payload_type <= 127:
        raise ValueError(f"payload type {payload_type} out of range 0-127")
    if len(csrc) > 15:
        raise ValueError("at most 15 CSRCs")
    b0 = 0x80 | len(csrc) | (0x10 if extension is not None else 0)
    parts = [RTP_HEADER.pack(b0, (0x80 if marker else 0) | payload_type, sequence & 0xFFFF,
                             timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)]
    if csrc:
        parts.append(struct.pack(f"!{len(csrc)}I", *csrc))
    if extension is not None:
        profile, data = extension
        if len(data) % 4:
            raise ValueError("RTP header extension data must be a multiple of 4 bytes")
        parts.append(struct.pack("!HH", profile, len(data) // 4))
        parts.append(bytes(data))
    parts.append(payload)
    return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """True when a datagram is RTCP rather than RTP (RFC 5761 §4: PT byte 192-223,
    which covers SR 200, RR 201, SDES 202, BYE 203, APP 204)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


# ---------------------------------------------------------------------------- RTCP


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (RFC 3550 §4) for a Unix time in seconds."""
    secs = int(unix_time)
    return ((secs + 2208988800) << 32 | int((unix_time - secs) * (1 << 32))) & (2**64 - 1)


@dataclass(slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1).

    Attributes:
        ssrc: the source this block reports on.
        fraction_lost: packets lost since the last report, as a fraction of 256.
        cumulative_lost: total packets lost (24-bit signed).
        highest_sequence: extended highest sequence number received (32 bits).
        jitter: interarrival jitter in timestamp units.
        lsr: middle 32 bits of the last SR's NTP timestamp (0 when none).
        dlsr: delay since that SR in 1/65536 s.
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    def _pack(self) -> bytes:
        lost = self.cumulative_lost & 0xFFFFFF
        return _REPORT.pack(self.ssrc, (self.fraction_lost & 0xFF) << 24 | lost,
                            self.highest_sequence & 0xFFFFFFFF, self.jitter, self.lsr,
                            self.dlsr)

    @classmethod
    def _unpack(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, fl, hs, jit, lsr, dlsr = _REPORT.unpack_from(data, pos)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, fl >> 24, lost, hs, jit, lsr, dlsr)


@dataclass(slots=True)
class RtcpSenderReport:
    """RTCP SR (RFC 3550 §6.4.1): what a sender sent, plus reception reports."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class RtcpReceiverReport:
    """RTCP RR (RFC 3550 §6.4.2): reception reports from a non-sender."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class RtcpPacket:
    """Any other RTCP packet (SDES, BYE, APP, ...), kept as its type and body."""

    packet_type: int
    count: int
    body: bytes


def _rtcp_header(count: int, pt: int, body_len: int) -> bytes:
    return _RTCP_HEADER.pack(0x80 | count, pt, (body_len + 4) // 4 - 1)


def build_rtcp_sr(ssrc: int, ntp_ts: int, rtp_timestamp: int, packet_count: int,
                  octet_count: int, reports: list[ReportBlock] | tuple[ReportBlock, ...] = ()
                  ) -> bytes:
    """Build an RTCP sender report (RFC 3550 §6.4.1) with up to 31 report blocks.

    Args:
        ssrc: our SSRC.
        ntp_ts: 64-bit NTP wallclock (see :func:`ntp_timestamp`).
        rtp_timestamp: the RTP timestamp matching ``ntp_ts``.
        packet_count: RTP packets sent so far.
        octet_count: RTP payload octets sent so far.
        reports: reception report blocks.
    """
    if len(reports) > 31:
        raise ValueError("at most 31 report blocks")
    body = _SR_INFO.pack(ssrc, ntp_ts & (2**64 - 1), rtp_timestamp & 0xFFFFFFFF,
                         packet_count & 0xFFFFFFFF, octet_count & 0xFFFFFFFF)
    body += b"".join(r._pack() for r in reports)
    return _rtcp_header(len(reports), RTCP_SR, len(body)) + body


def build_rtcp_rr(ssrc: int, reports: list[ReportBlock] | tuple[ReportBlock, ...] = ()) -> bytes:
    """Build an RTCP receiver report (RFC 3550 §6.4.2) with up to 31 report blocks."""
    if len(reports) > 31:
        raise ValueError("at most 31 report blocks")
    body = struct.pack("!I", ssrc) + b"".join(r._pack() for r in reports)
    return _rtcp_header(len(reports), RTCP_RR, len(body)) + body


def build_rtcp_sdes(ssrc: int, cname: str) -> bytes:
    """Build an RTCP SDES packet with one CNAME item (RFC 3550 §6.5.1), as every
    compound RTCP packet must carry (§6.1)."""
    name = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(name)) + name + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return _rtcp_header(1, RTCP_SDES, len(chunk)) + chunk


def parse_rtcp(data: bytes) -> list[RtcpSenderReport | RtcpReceiverReport | RtcpPacket]:
    """Parse a (compound) RTCP packet.

    Returns:
        One item per RTCP packet: SR and RR decoded, any other type as :class:`RtcpPacket`.

    Raises:
        RtpParseError: truncated packet, version not 2, a length field that overruns
            the datagram, or report blocks that do not fit.
    """
    out: list[RtcpSenderReport | RtcpReceiverReport | RtcpPacket] = []
    pos, n = 0, len(data)
    if n < 4:
        raise RtpParseError(f"RTCP packet too short: {n} bytes")
    while pos < n:
        if pos + 4 > n:
            raise RtpParseError("RTCP header truncated")
        b0, pt, words = _RTCP_HEADER.unpack_from(data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise RtpParseError(f"RTCP version {b0 >> 6}, expected 2")
        length = 4 * (words + 1)
        if pos + length > n:
            raise RtpParseError(f"RTCP length {length} overruns datagram ({n - pos} left)")
        count = b0 & 0x1F
        body = data[pos + 4:pos + length]
        if b0 & 0x20:  # padding: only allowed on the last packet
            pad = body[-1] if body else 0
            if pad == 0 or pad > len(body):
                raise RtpParseError("RTCP padding invalid")
            body = body[:-pad]
        if pt == RTCP_SR:
            if len(body) < 24 + 24 * count:
                raise RtpParseError("RTCP SR too short for its report count")
            ssrc, ntp, rts, pc, oc = _SR_INFO.unpack_from(body)
            reports = [ReportBlock._unpack(body, 24 + 24 * i) for i in range(count)]
            out.append(RtcpSenderReport(ssrc, ntp, rts, pc, oc, reports))
        elif pt == RTCP_RR:
            if len(body) < 4 + 24 * count:
                raise RtpParseError("RTCP RR too short for its report count")
            (ssrc,) = struct.unpack_from("!I", body)
            reports = [ReportBlock._unpack(body, 4 + 24 * i) for i in range(count)]
            out.append(RtcpReceiverReport(ssrc, reports))
        else:
            out.append(RtcpPacket(pt, count, bytes(body)))
        pos += length
    return out


# ---------------------------------------------------------------------------- RFC 4733


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 §2.3 telephone-event payload.

    Attributes:
        event: event code 0-255 (DTMF: 0-15).
        end: the E bit, set on the final packet(s) of the event.
        volume: power level 0-63, in -dBm0 (10 = -10 dBm0).
        duration: duration so far in RTP timestamp units (800 = 100 ms at 8000 Hz).
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @property
    def digit(self) -> str | None:
        """The DTMF digit (``0``-``9``, ``*``, ``#``, ``A``-``D``), or None for other events."""
        return event_to_digit(self.event)


def build_telephone_event(event: int, *, end: bool = False, volume: int = 10,
                          duration: int = 0) -> bytes:
    """Encode a 4-byte RFC 4733 telephone-event payload.

    Raises:
        ValueError: event not 0-255, volume not 0-63 or duration not 0-65535.
    """
    if not 0 <= event <= 255:
        raise ValueError(f"event code {event} out of range 0-255")
    if not 0 <= volume <= 63:
        raise ValueError(f"volume {volume} out of range 0-63")
    if not 0 <= duration <= 0xFFFF:
        raise ValueError(f"duration {duration} out of range 0-65535")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Decode an RFC 4733 telephone-event payload (the first event of a possibly
    redundant payload).

    Raises:
        RtpParseError: shorter than 4 bytes.
    """
    if len(payload) < 4:
        raise RtpParseError(f"telephone-event payload too short: {len(payload)} bytes")
    ev, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(ev, bool(flags & 0x80), flags & 0x3F, duration)


def digit_to_event(digit: str) -> int:
    """RFC 4733 §3.2 event code of a DTMF digit (``'#'`` -> 11).

    Raises:
        ValueError: not one of ``0-9 * # A-D``.
    """
    try:
        return _DIGIT_CODES[digit]
    except KeyError:
        raise ValueError(f"not a DTMF digit: {digit!r} (allowed: 0-9 * # A-D)") from None


def event_to_digit(event: int) -> str | None:
    """The DTMF digit for event code 0-15, or None for other codes."""
    return DTMF_DIGITS[event] if 0 <= event < 16 else None
