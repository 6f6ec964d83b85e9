"""Digest client tests against published vectors (RFC 2617 §3.5, RFC 7616 §3.9.1)."""

from __future__ import annotations

import pytest

from gateway.adapters.sip.digest import Challenge, authorization, digest_response, parse_challenge
from gateway.errors import SipParseError


def test_rfc2617_example_md5_qop_auth() -> None:
    ch = parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                         'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                         'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    assert ch.qop == ("auth", "auth-int")
    resp, qop, cnonce = digest_response(challenge=ch, method="GET", uri="/dir/index.html",
                                        username="Mufasa", password="Circle Of Life",
                                        cnonce="0a4f113b", nc=1)
    assert resp == "6629fae49393a05397450978507c4ef1"
    assert (qop, cnonce) == ("auth", "0a4f113b")


def test_rfc7616_sha256_vector() -> None:
    ch = parse_challenge('Digest realm="http-auth@example.org", qop="auth, auth-int", '
                         'algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",'
                         ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    resp, _, _ = digest_response(challenge=ch, method="GET", uri="/dir/index.html",
                                 username="Mufasa", password="Circle of Life",
                                 cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert resp == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_authorization_header_fields() -> None:
    ch = Challenge(realm="vgw", nonce="n1", qop=("auth",), opaque="op")
    value = authorization(challenge=ch, method="INVITE", uri="sip:100@h", username="u",
                          password="p", cnonce="c1", nc=1)
    assert value.startswith("Digest ")
    for part in ('username="u"', 'realm="vgw"', 'nonce="n1"', 'uri="sip:100@h"',
                 "qop=auth", "nc=00000001", 'cnonce="c1"', 'opaque="op"', "algorithm=MD5"):
        assert part in value


def test_rfc2069_without_qop() -> None:
    ch = Challenge(realm="r", nonce="n")
    value = authorization(challenge=ch, method="INVITE", uri="sip:x@y", username="u",
                          password="p")
    assert "qop" not in value and "cnonce" not in value


@pytest.mark.parametrize(("value", "fragment"), [
    ('Basic realm="x"', "scheme"),
    ('Digest nonce="x"', "realm"),
])
def test_bad_challenges(value: str, fragment: str) -> None:
    with pytest.raises(SipParseError, match=fragment):
        parse_challenge(value)


def test_unsupported_algorithm_and_qop() -> None:
    with pytest.raises(SipParseError, match="algorithm"):
        digest_response(challenge=Challenge("r", "n", algorithm="SHA-512-256-X"),
                        method="INVITE", uri="u", username="a", password="b")
    with pytest.raises(SipParseError, match="qop"):
        digest_response(challenge=Challenge("r", "n", qop=("auth-int",)),
                        method="INVITE", uri="u", username="a", password="b")
