"""SIP parser/serializer tests from bytes (RFC 3261 §7, §20; RFC 4475 torture cases)."""

from __future__ import annotations

import pytest

from gateway.adapters.sip.message import (
    SipRequest,
    SipResponse,
    StreamFramer,
    make_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_commas,
)
from gateway.errors import SipParseError

INVITE = (
    b"INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-0\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice Smith\" <sip:alice@127.0.0.1:5062>;tag=abc\r\n"
    b"To: <sip:100@127.0.0.1:5060>\r\n"
    b"Call-ID: call-1@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@127.0.0.1:5062>\r\n"
    b"X-Campaign-Id: 42\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_parse_request_fields() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE" and msg.uri == "sip:100@127.0.0.1:5060"
    assert msg.call_id == "call-1@127.0.0.1"
    assert msg.cseq == (1, "INVITE")
    assert len(msg.get_all("Via")) == 2
    assert msg.top_via.branch == "z9hG4bK-1" and msg.top_via.port == 5062
    assert msg.from_.display == "Alice Smith" and msg.from_.tag == "abc"
    assert msg.to.tag is None
    assert msg.x_headers() == {"X-Campaign-Id": "42"}
    assert msg.body == b"v=0\n"


def test_roundtrip_recomputes_content_length() -> None:
    msg = parse_message(INVITE)
    msg.body = b"hello world"
    again = parse_message(msg.serialize())
    assert again.body == b"hello world"
    assert again.get("content-length") == "11"


def test_compact_forms_and_multi_value_via() -> None:
    data = (b"OPTIONS sip:a@b SIP/2.0\r\n"
            b"v: SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/TCP h2:5070;branch=z9hG4bK2\r\n"
            b"f: <sip:x@y>;tag=1\r\nt: sip:a@b\r\ni: cid\r\nCSeq: 9 OPTIONS\r\n"
            b"m: <sip:x@y>\r\nl: 0\r\n\r\n")
    msg = parse_message(data)
    assert msg.get("Call-ID") == "cid"
    vias = msg.get_all("Via")
    assert [parse_via(v).host for v in vias] == ["h1", "h2"]
    assert parse_via(vias[1]).port == 5070 and parse_via(vias[1]).transport == "TCP"
    assert msg.get("Contact") == "<sip:x@y>"


def test_parse_response() -> None:
    data = (b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\n"
            b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (486, "Busy Here")
    assert msg.to.tag == "2"


# RFC 4475 §3.1.1.1 "wsinv": folding, odd whitespace, escaped quotes
WSINV = (
    b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    b"TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    b"from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n"
    b"  ;\r\n  tag = 98asjd8\r\n"
    b"MaX-fOrWaRdS: 0068\r\n"
    b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
    b"Content-Length   : 150\r\n"
    b"cseq: 0009\r\n  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n"
    b"s :\r\n"
    b"NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n"
    b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n"
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n"
    b"m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n"
    b"      newvalue ;\r\n  secondparam ; q = 0.33\r\n"
    b"\r\n"
    b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\n"
    b"t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
)


def test_rfc4475_wsinv() -> None:
    msg = parse_message(WSINV)
    assert isinstance(msg, SipRequest)
    assert msg.cseq == (9, "INVITE")
    assert msg.to.tag == "1918181833n"
    assert msg.from_.tag == "98asjd8"
    assert len(msg.get_all("Via")) == 3
    assert parse_via(msg.get_all("Via")[1]).branch == "z9hG4bK9ikj8"
    assert len(msg.body) == 150
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"


# RFC 4475 §3.1.2.x invalid messages
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        # §3.1.2.6 ncl: negative Content-Length
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: -999\r\n\r\n",
         "Content-Length"),
        # §3.1.2.5 clerr: Content-Length larger than the body
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 9999\r\n\r\nv=0\r\n",
         "exceeds"),
        # §3.1.2.7 scalar02: CSeq out of range
        (b"REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 36893488147419103232 REGISTER\r\n\r\n",
         "below 2"),
        # §3.3.7 mismatch01: CSeq method differs from request method
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 8 INVITE\r\n\r\n", "does not match"),
        # §3.4.2 badvers
        (b"OPTIONS sip:a@b SIP/7.0\r\nVia: SIP/7.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 8 OPTIONS\r\n\r\n", "version"),
        # §3.1.2.10 missing mandatory header
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 8 OPTIONS\r\n\r\n", "From"),
        (b"\x00\x01garbage\r\n\r\n", "request line"),
        (b"", "empty"),
    ],
)
def test_malformed_raises_precise_error(data: bytes, fragment: str) -> None:
    with pytest.raises(SipParseError, match=fragment):
        parse_message(data)


def test_stream_requires_content_length() -> None:
    data = INVITE.replace(b"Content-Length: 4\r\n", b"")
    parse_message(data)  # fine over UDP
    with pytest.raises(SipParseError, match="stream"):
        parse_message(data, stream=True)


def test_stream_framer_splits_and_reassembles() -> None:
    framer = StreamFramer()
    two = b"\r\n\r\n" + INVITE + INVITE
    out = []
    for i in range(0, len(two), 7):  # dribble 7 bytes at a time
        out += framer.feed(two[i:i + 7])
    assert out == [INVITE, INVITE]


def test_stream_framer_rejects_missing_length() -> None:
    with pytest.raises(SipParseError, match="Content-Length"):
        StreamFramer().feed(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n")


def test_uri_and_name_addr() -> None:
    uri = parse_uri("sip:bob@example.com:5070;transport=TCP?subject=x")
    assert (uri.user, uri.host, uri.port, uri.transport) == ("bob", "example.com", 5070, "tcp")
    assert parse_uri("sip:[::1]:5060").host == "::1"
    with pytest.raises(SipParseError, match="unsupported URI"):
        parse_uri("http://x")
    na = parse_name_addr('"A, B" <sip:a@b;lr>;tag=7')
    assert (na.display, na.uri, na.tag) == ("A, B", "sip:a@b;lr", "7")
    bare = parse_name_addr("sip:a@b;tag=9")
    assert (bare.uri, bare.tag) == ("sip:a@b", "9")
    assert split_commas('"a,b" <sip:x>, <sip:y,z>') == ['"a,b" <sip:x>', "<sip:y,z>"]


def test_make_response_copies_headers_and_adds_tag() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, SipRequest)
    resp = make_response(req, 180, "Ringing", to_tag="t1")
    again = parse_message(resp.serialize())
    assert isinstance(again, SipResponse)
    assert again.get_all("Via") == req.get_all("Via")
    assert again.to.tag == "t1"
    assert make_response(req, 100, "Trying", to_tag="t1").to.tag is None
