"""SIP digest authentication, client side (RFC 3261 §22, RFC 2617 §3.2, RFC 7616, RFC 8760).

Parses ``WWW-Authenticate`` / ``Proxy-Authenticate`` challenges and computes the
``Authorization`` / ``Proxy-Authorization`` answer: algorithms MD5 and SHA-256
(plus their ``-sess`` variants), ``qop=auth`` with ``cnonce`` and ``nc``, or the RFC 2069
form without qop. Pure functions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from gateway.adapters.sip.message import split_commas
from gateway.errors import SipParseError

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass(frozen=True)
class Challenge:
    """One parsed digest challenge.

    Attributes:
        realm: protection realm.
        nonce: server nonce.
        algorithm: ``MD5``, ``SHA-256`` (``-sess`` suffix allowed).
        qop: the qop options offered (e.g. ``("auth",)``), empty for RFC 2069.
        opaque: echoed back verbatim when present.
        stale: True when the previous nonce was merely stale (retry is allowed).
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> Challenge:
    """Parse ``Digest realm="...", nonce="...", qop="auth", algorithm=SHA-256``.

    Raises:
        SipParseError: not a Digest challenge, or realm/nonce missing.
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"unsupported authentication scheme {scheme!r}")
    params: dict[str, str] = {}
    for item in split_commas(rest):
        k, sep, v = item.partition("=")
        if not sep:
            continue
        v = v.strip()
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = v[1:-1]
        params[k.strip().lower()] = v
    if "realm" not in params or "nonce" not in params:
        raise SipParseError(f"digest challenge lacks realm or nonce: {value!r}")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5").upper(),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def _h(algorithm: str, data: str) -> str:
    base = algorithm.removesuffix("-SESS")
    if base not in _HASHES:
        raise SipParseError(f"unsupported digest algorithm {algorithm!r}")
    return _HASHES[base](data.encode("utf-8")).hexdigest()


def digest_response(*, challenge: Challenge, method: str, uri: str, username: str,
                    password: str, cnonce: str | None = None, nc: int = 1,
                    body: bytes = b"") -> tuple[str, str | None, str | None]:
    """Compute the digest ``response`` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).

    Returns:
        ``(response hex, qop used or None, cnonce used or None)``.

    Raises:
        SipParseError: unsupported algorithm or qop (only ``auth`` is supported).
    """
    alg = challenge.algorithm
    ha1 = _h(alg, f"{username}:{challenge.realm}:{password}")
    qop: str | None = None
    if challenge.qop:
        if "auth" not in challenge.qop:
            raise SipParseError(f"unsupported qop {','.join(challenge.qop)!r} (only auth)")
        qop = "auth"
        cnonce = cnonce or secrets.token_hex(8)
    if alg.endswith("-SESS"):
        cnonce = cnonce or secrets.token_hex(8)
        ha1 = _h(alg, f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = _h(alg, f"{method}:{uri}")
    if qop:
        resp = _h(alg, f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")
    else:
        resp = _h(alg, f"{ha1}:{challenge.nonce}:{ha2}")
    return resp, qop, cnonce


def authorization(*, challenge: Challenge, method: str, uri: str, username: str,
                  password: str, cnonce: str | None = None, nc: int = 1) -> str:
    """The value of the ``Authorization`` / ``Proxy-Authorization`` header."""
    resp, qop, cnonce = digest_response(challenge=challenge, method=method, uri=uri,
                                        username=username, password=password,
                                        cnonce=cnonce, nc=nc)
    parts = [f'username="{username}"', f'realm="{challenge.realm}"',
             f'nonce="{challenge.nonce}"', f'uri="{uri}"', f'response="{resp}"',
             f"algorithm={challenge.algorithm}"]
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    if qop:
        parts += [f"qop={qop}", f"nc={nc:08x}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)
