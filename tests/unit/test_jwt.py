"""Service-account JWT verification (RFC 7519 claims, RFC 7515 RS256 signatures)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from gateway.api.auth import CLOCK_SKEW, MAX_TOKEN_LIFETIME, authenticate, verify_jwt
from gateway.api.errors import PlatformError
from gateway.api.key_methods import new_key_pair
from gateway.api.params import Params
from gateway.store.keys import KeyForJwt, Permission

KID = "5f0e3c52-1111-4c2d-9a7b-000000000001"
PRIVATE, PUBLIC = new_key_pair()
OTHER_PRIVATE, _ = new_key_pair()


class KeyStore:
    """The one store method the verifier uses."""

    def __init__(self, role_ids: tuple[int, ...] = (2,)) -> None:
        self.role_ids = role_ids

    async def key_for_jwt(self, key_id: str) -> KeyForJwt | None:
        if key_id != KID:
            return None
        return KeyForJwt(KID, 7, "acct", PUBLIC, self.role_ids)


def token(claims: dict[str, Any] | None = None, *, kid: str = KID, key: str = PRIVATE,
          now: float | None = None, **headers: Any) -> str:
    ts = int(time.time() if now is None else now)
    body: dict[str, Any] = {"iss": "7", "iat": ts - 5, "exp": ts + 24}
    body.update(claims or {})
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid, **headers})


async def refused(tok: str, store: Any = None) -> None:
    with pytest.raises(PlatformError) as info:
        await verify_jwt(tok, store or KeyStore())
    assert info.value.code == 100
    assert info.value.msg == "Authorization failed"


async def test_valid_token_gives_the_keys_account_and_role() -> None:
    principal = await verify_jwt(token(), KeyStore())
    assert principal.account.account_id == 7 and principal.key_id == KID
    assert principal.permission is Permission.WRITE
    # the highest of several roles wins; no role at all may call nothing
    assert (await verify_jwt(token(), KeyStore((3, 1)))).permission is Permission.ADMIN
    assert (await verify_jwt(token(), KeyStore(()))).permission is Permission.NONE


async def test_expired_token_is_100_but_skew_is_tolerated() -> None:
    now = time.time()
    await refused(token({"iat": int(now) - 200, "exp": int(now) - CLOCK_SKEW - 5}))
    ok = token({"iat": int(now) - 100, "exp": int(now) - CLOCK_SKEW + 10})
    assert (await verify_jwt(ok, KeyStore())).account.account_id == 7


async def test_iat_in_the_future_beyond_skew_is_100() -> None:
    now = int(time.time())
    await refused(token({"iat": now + CLOCK_SKEW + 30, "exp": now + CLOCK_SKEW + 60}))
    ok = token({"iat": now + CLOCK_SKEW - 10, "exp": now + CLOCK_SKEW + 20})
    assert (await verify_jwt(ok, KeyStore())).key_id == KID


async def test_lifetime_over_an_hour_is_100() -> None:
    now = int(time.time())
    await refused(token({"iat": now, "exp": now + MAX_TOKEN_LIFETIME + 1}))
    await refused(token({"iat": now, "exp": now - 1}))  # exp before iat
    assert await verify_jwt(token({"iat": now, "exp": now + MAX_TOKEN_LIFETIME}), KeyStore())


async def test_wrong_kid_and_missing_kid_are_100() -> None:
    await refused(token(kid="00000000-0000-0000-0000-000000000000"))
    bare = jwt.encode({"iss": "7", "iat": int(time.time()), "exp": int(time.time()) + 10},
                      PRIVATE, algorithm="RS256")
    await refused(bare)


async def test_tampered_signature_or_payload_or_other_key_is_100() -> None:
    tok = token()
    head, payload, sig = tok.split(".")
    flipped = bytearray(base64.urlsafe_b64decode(sig + "=="))
    flipped[10] ^= 0x01
    bad_sig = base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode()
    await refused(f"{head}.{payload}.{bad_sig}")
    other_payload = token({"iss": "8"}).split(".")[1]
    await refused(f"{head}.{other_payload}.{sig}")
    await refused(token(key=OTHER_PRIVATE))


async def test_wrong_iss_is_100() -> None:
    await refused(token({"iss": "8"}))
    now = int(time.time())
    for iss in (None, 8, ["7"]):
        raw = json.dumps({"iss": iss, "iat": now, "exp": now + 10}).encode()
        await refused(jwt.api_jws.encode(raw, PRIVATE, algorithm="RS256", headers={"kid": KID}))
    # a numeric iss equal to the account id is what some clients send
    raw = json.dumps({"iss": 7, "iat": now, "exp": now + 10}).encode()
    tok = jwt.api_jws.encode(raw, PRIVATE, algorithm="RS256", headers={"kid": KID})
    assert (await verify_jwt(tok, KeyStore())).account.account_id == 7


async def test_missing_or_ill_typed_time_claims_are_100() -> None:
    now = int(time.time())
    await refused(jwt.encode({"iss": "7", "exp": now + 10}, PRIVATE, algorithm="RS256",
                             headers={"kid": KID}))
    await refused(jwt.encode({"iss": "7", "iat": now}, PRIVATE, algorithm="RS256",
                             headers={"kid": KID}))
    await refused(token({"iat": "yesterday"}))
    await refused(token({"exp": True}))


async def test_other_algorithms_and_garbage_are_100() -> None:
    now = int(time.time())
    hs = jwt.encode({"iss": "7", "iat": now, "exp": now + 10}, PUBLIC.encode()[:32],
                    algorithm="HS256", headers={"kid": KID})
    await refused(hs)
    unsigned = jwt.encode({"iss": "7", "iat": now, "exp": now + 10}, None, algorithm="none",
                          headers={"kid": KID})
    await refused(unsigned)
    await refused("not-a-token")
    await refused("a.b.c")


async def test_authenticate_prefers_bearer_and_checks_account_id() -> None:
    headers = {"authorization": f"Bearer {token()}"}
    principal = await authenticate(Params({}), headers, KeyStore())  # type: ignore[arg-type]
    assert principal.account.account_id == 7
    assert await authenticate(Params({"account_id": "7"}), headers,
                              KeyStore())  # type: ignore[arg-type]
    with pytest.raises(PlatformError) as info:
        await authenticate(Params({"account_id": "8"}), headers,
                           KeyStore())  # type: ignore[arg-type]
    assert info.value.code == 100
