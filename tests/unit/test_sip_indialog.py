"""Pure parts of the in-dialog requests: the status line of a ``message/sipfrag`` body
(RFC 3420, as REFER's NOTIFYs carry it, RFC 3515 §2.4.5) and Content-Type media types."""

from __future__ import annotations

import pytest

from gateway.adapters.sip.indialog import media_type, parse_sipfrag
from gateway.errors import SipParseError


@pytest.mark.parametrize(("body", "expected"), [
    (b"SIP/2.0 200 OK\r\n", (200, "OK")),
    (b"SIP/2.0 100 Trying", (100, "Trying")),
    (b"\r\nSIP/2.0 603 Declined\r\nContent-Length: 0\r\n\r\n", (603, "Declined")),
    (b"SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\n", (486, "Busy Here")),
    (b"SIP/2.0 180", (180, "")),
    (b"SIP/2.0  183   Session Progress  ", (183, "Session Progress")),
])
def test_sipfrag_status_line(body: bytes, expected: tuple[int, str]) -> None:
    assert parse_sipfrag(body) == expected


@pytest.mark.parametrize("body", [
    b"", b"INVITE sip:bob@example.com SIP/2.0\r\n", b"SIP/2.0 OK", b"SIP/2.0 099 Low",
    b"SIP/2.0 700 High", b"SIP/3.0 200 OK", b"\xff\xfe",
])
def test_sipfrag_without_a_status_line_is_an_error(body: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_sipfrag(body)


def test_media_type_drops_parameters() -> None:
    assert media_type("message/sipfrag;version=2.0") == "message/sipfrag"
    assert media_type(" text/plain ; charset=UTF-8") == "text/plain"
    assert media_type(None) == media_type("") == ""
