"""RTP/RTCP/RFC 4733 tests from bytes (RFC 3550, RFC 5761, RFC 4733)."""

from __future__ import annotations

import pytest

from gateway.adapters.sip.rtp import (
    ReportBlock,
    RtcpPacket,
    RtcpReceiverReport,
    RtcpSenderReport,
    RtpPacket,
    RtpParseError,
    TelephoneEvent,
    build_rtcp_rr,
    build_rtcp_sdes,
    build_rtcp_sr,
    build_rtp,
    build_telephone_event,
    digit_to_event,
    event_to_digit,
    is_rtcp,
    ntp_timestamp,
    parse_rtcp,
    parse_rtp,
    parse_telephone_event,
)
from gateway.errors import MediaError

# A PCMU packet as captured on the wire: V=2, M=1, PT=0, seq=0x1234, ts=0xdeadbeef,
# SSRC=0x01020304, 4 payload bytes.
WIRE = bytes.fromhex("80801234deadbeef01020304") + b"\xff\xfe\xfd\xfc"


def test_parse_known_bytes() -> None:
    p = parse_rtp(WIRE)
    assert (p.version, p.padding, p.extension, p.csrc) == (2, False, False, ())
    assert (p.marker, p.payload_type, p.sequence) == (True, 0, 0x1234)
    assert (p.timestamp, p.ssrc, p.payload) == (0xDEADBEEF, 0x01020304, b"\xff\xfe\xfd\xfc")


def test_build_known_bytes_and_round_trip() -> None:
    assert build_rtp(0, 0x1234, 0xDEADBEEF, 0x01020304, b"\xff\xfe\xfd\xfc", marker=True) == WIRE
    pkt = RtpPacket(marker=False, payload_type=101, sequence=65535, timestamp=2**32 - 1,
                    ssrc=7, payload=b"x" * 160, csrc=(1, 2), extension=True,
                    extension_profile=0xBEDE, extension_data=b"\x10\xaa\x00\x00")
    data = pkt.serialize()
    assert parse_rtp(data) == pkt
    assert build_rtp(8, 65536 + 5, 2**32 + 9, 1, b"")[2:8] == bytes.fromhex("000500000009")


def test_padding_stripped() -> None:
    data = bytearray(build_rtp(0, 1, 2, 3, b"abcd")) + b"\x00\x00\x03"
    data[0] |= 0x20
    p = parse_rtp(bytes(data))
    assert p.padding and p.payload == b"abcd"


@pytest.mark.parametrize("data", [
    b"",
    b"\x80\x00\x00",  # too short
    bytes.fromhex("40001234deadbeef01020304"),  # version 1
    bytes.fromhex("00001234deadbeef01020304"),  # version 0
    bytes.fromhex("83001234deadbeef01020304") + b"\x00" * 8,  # 3 CSRCs, room for 2
    bytes.fromhex("90001234deadbeef01020304") + b"\xbe\xde",  # extension header cut
    bytes.fromhex("90001234deadbeef01020304") + b"\xbe\xde\x00\x02" + b"\x00" * 4,
    bytes.fromhex("a0001234deadbeef01020304") + b"ab\x00",  # padding count 0
    bytes.fromhex("a0001234deadbeef01020304") + b"ab\x09",  # padding longer than payload
])
def test_garbage_raises(data: bytes) -> None:
    with pytest.raises(RtpParseError):
        parse_rtp(data)
    assert issubclass(RtpParseError, MediaError)


def test_is_rtcp_demux() -> None:
    assert not is_rtcp(WIRE)
    assert not is_rtcp(build_rtp(101, 1, 2, 3, b"1234", marker=True))  # M + PT 101 = 229
    for pt in range(200, 205):
        assert is_rtcp(bytes([0x80, pt, 0, 1]))
    assert not is_rtcp(b"\x80")


def test_rtcp_sr_rr_round_trip() -> None:
    ntp = ntp_timestamp(1_700_000_000.5)
    assert ntp >> 32 == 1_700_000_000 + 2208988800 and ntp & 0xFFFFFFFF == 1 << 31
    block = ReportBlock(ssrc=9, fraction_lost=25, cumulative_lost=-3, highest_sequence=70000,
                        jitter=12, lsr=0x11223344, dlsr=65536)
    sr = build_rtcp_sr(1, ntp, 160, 50, 8000, [block])
    assert len(sr) == 28 + 24 and sr[0] == 0x81 and sr[1] == 200
    assert int.from_bytes(sr[2:4], "big") == len(sr) // 4 - 1
    rr = build_rtcp_rr(2, [block])
    sdes = build_rtcp_sdes(1, "vgw@host")
    assert len(sdes) % 4 == 0
    parsed = parse_rtcp(sr + rr + sdes)
    assert parsed[0] == RtcpSenderReport(1, ntp, 160, 50, 8000, [block])
    assert parsed[1] == RtcpReceiverReport(2, [block])
    assert isinstance(parsed[2], RtcpPacket) and parsed[2].packet_type == 202
    assert b"vgw@host" in parsed[2].body


@pytest.mark.parametrize("data", [
    b"\x80\xc8",
    b"\x40\xc8\x00\x06" + b"\x00" * 24,  # version 1
    b"\x80\xc8\x00\x09" + b"\x00" * 24,  # length overruns
    b"\x81\xc8\x00\x06" + b"\x00" * 24,  # one report block announced, none present
])
def test_rtcp_garbage_raises(data: bytes) -> None:
    with pytest.raises(RtpParseError):
        parse_rtcp(data)


def test_telephone_event_bytes() -> None:
    # RFC 4733 §2.3: event, E|R|volume, duration
    assert build_telephone_event(11, end=True, volume=10, duration=800) == b"\x0b\x8a\x03\x20"
    ev = parse_telephone_event(b"\x05\x0a\x00\xa0")
    assert ev == TelephoneEvent(5, end=False, volume=10, duration=160)
    assert ev.digit == "5"
    with pytest.raises(RtpParseError):
        parse_telephone_event(b"\x05\x0a\x00")
    with pytest.raises(ValueError):
        build_telephone_event(1, duration=70000)


def test_digit_codes() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert [event_to_digit(i) for i in (0, 9, 10, 11, 12, 15, 16, 32)] == [
        "0", "9", "*", "#", "A", "D", None, None]
    with pytest.raises(ValueError):
        digit_to_event("E")
    with pytest.raises(ValueError):
        digit_to_event("12")
