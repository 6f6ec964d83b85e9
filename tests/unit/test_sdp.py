"""SDP offer/answer tests (RFC 4566 parsing, RFC 3264 negotiation, RFC 4733 events)."""

from __future__ import annotations

import pytest

from gateway.adapters.sip import sdp
from gateway.errors import SipParseError
from gateway.media.format import PCMA_8K, PCMU_8K


def _offer(fmts: str, extra: str = "", conn: str = "c=IN IP4 10.0.0.5\r\n") -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\n{conn}t=0 0\r\n"
            f"m=audio 40000 RTP/AVP {fmts}\r\n{extra}").encode()


def test_offer_contents() -> None:
    body = sdp.build_offer("192.0.2.1", 10000).decode()
    assert "m=audio 10000 RTP/AVP 0 8 101\r\n" in body
    assert "a=rtpmap:101 telephone-event/8000" in body
    assert "a=fmtp:101 0-16" in body and "a=ptime:20" in body and "a=sendrecv" in body
    assert "c=IN IP4 192.0.2.1" in body
    parsed = sdp.parse_sdp(body)
    assert parsed.audio() is not None and parsed.audio().formats == ["0", "8", "101"]


def test_first_common_codec_in_offerers_order() -> None:
    params, answer = sdp.negotiate(
        _offer("9 8 0 96", "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"),
        "192.0.2.1", 10002)
    assert params.format == PCMA_8K and params.payload_type == 8
    assert params.dtmf_payload_type == 96
    assert params.remote == ("10.0.0.5", 40000)
    text = answer.decode()
    assert "m=audio 10002 RTP/AVP 8 96\r\n" in text
    assert "a=rtpmap:8 PCMA/8000" in text and "a=rtpmap:96 telephone-event/8000" in text


def test_pcmu_without_rtpmap_and_no_dtmf() -> None:
    params, answer = sdp.negotiate(_offer("0"), "h", 1)
    assert params.format == PCMU_8K and params.dtmf_payload_type is None
    assert "telephone-event" not in answer.decode()


def test_dynamic_pcmu_payload_type() -> None:
    params, _ = sdp.negotiate(_offer("97", "a=rtpmap:97 PCMU/8000\r\n"), "h", 1)
    assert (params.payload_type, params.format) == (97, PCMU_8K)


def test_no_common_codec() -> None:
    with pytest.raises(sdp.NoCommonCodec, match="G722"):
        sdp.negotiate(_offer("9", "a=rtpmap:9 G722/8000\r\n"), "h", 1)


def test_media_level_connection_and_direction() -> None:
    body = _offer("0", "c=IN IP4 10.9.9.9\r\na=sendonly\r\n")
    params, answer = sdp.negotiate(body, "h", 1)
    assert params.remote == ("10.9.9.9", 40000)
    assert "a=recvonly" in answer.decode()


def test_other_streams_are_rejected_in_order() -> None:
    body = _offer("0") + b"m=video 5000 RTP/AVP 31\r\n"
    _, answer = sdp.negotiate(body, "h", 1)
    lines = answer.decode().splitlines()
    ms = [ln for ln in lines if ln.startswith("m=")]
    assert ms == ["m=audio 1 RTP/AVP 0", "m=video 0 RTP/AVP 31"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"hello", "v=0"),
        (b"v=0\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n", "'o='"),
        (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4\r\n", "'m='"),
        (_offer("0", conn=""), "connection"),
        (_offer("0").replace(b"40000", b"99999"), "media port"),
        (_offer("abc"), "payload type"),
        (_offer("0", "a=rtpmap:x\r\n"), "rtpmap"),
        (_offer("0").replace(b"c=IN IP4 10.0.0.5", b"c=IN IPX 1"), "connection"),
        (b"v=0\r\nthis is not sdp\r\n", "line 2"),
    ],
)
def test_bad_sdp_rejected_precisely(body: bytes, fragment: str) -> None:
    with pytest.raises(SipParseError, match=fragment):
        sdp.parse_sdp(body)


def test_parse_answer_reads_chosen_codec() -> None:
    answer = _offer("8 101", "a=rtpmap:101 telephone-event/8000\r\n")
    params = sdp.parse_answer(answer)
    assert params.format == PCMA_8K and params.dtmf_payload_type == 101
