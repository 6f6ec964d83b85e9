"""Authentication of platform_api calls, the two ways Voximplant's HTTP API takes:

* ``account_id`` + ``api_key`` parameters (the account's API key; full rights);
* ``Authorization: Bearer <JWT>`` signed by a service-account key (CreateKey): a JSON
  Web Token (RFC 7519) in JWS compact form (RFC 7515) with ``alg`` RS256 (RFC 7518
  section 3.3), header ``kid`` = the key id, and claims ``iss`` = the account id,
  ``iat`` and ``exp`` (numeric dates, RFC 7519 section 2) with ``exp - iat`` at most
  :data:`MAX_TOKEN_LIFETIME` seconds. :data:`CLOCK_SKEW` seconds of skew are tolerated
  on both ``iat`` (not in the future) and ``exp`` (not in the past). The key's roles
  give the caller's :class:`~gateway.store.keys.Permission`.

Every failure is the same error 100 (no hint for guessing). Everything is behind one
callable, :data:`Authenticator`; :func:`authenticate` is the default.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import jwt

from gateway.api.errors import AUTHORIZATION_FAILED, PlatformError
from gateway.api.params import Params
from gateway.store import AccountInfo, Store
from gateway.store.keys import Permission, permission_of

#: Longest accepted token lifetime, ``exp - iat``, in seconds.
MAX_TOKEN_LIFETIME = 3600
#: Clock skew tolerated on ``iat`` and ``exp``, in seconds.
CLOCK_SKEW = 60
#: The only JWS algorithm accepted.
JWT_ALGORITHM = "RS256"


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is calling: the account, what they may do, and the key they signed with."""

    account: AccountInfo
    permission: Permission
    key_id: str | None = None


#: ``(params, lower-cased headers, store) -> principal``; raises ``PlatformError(100)``.
Authenticator = Callable[[Params, Mapping[str, str], Store], Awaitable[Principal]]


def authorization_failed() -> PlatformError:
    """Error 100, the same whatever was wrong (no hint for guessing)."""
    return PlatformError(AUTHORIZATION_FAILED, "Authorization failed")


async def api_key_authenticator(params: Params, headers: Mapping[str, str],
                                store: Store) -> Principal:
    """Authenticate with the ``account_id`` and ``api_key`` parameters (full rights).

    The store keeps only a salted hash of the key and compares in constant time.

    Raises:
        PlatformError: 100 when either is missing or they do not match.
    """
    raw_id = params.raw("account_id")
    api_key = params.raw("api_key")
    if raw_id is None or api_key is None:
        raise authorization_failed()
    try:
        account_id = int(raw_id)
    except ValueError:
        raise authorization_failed() from None
    account = await store.authenticate(account_id, api_key)
    if account is None:
        raise authorization_failed()
    return Principal(account, Permission.ADMIN)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    value = headers.get("authorization", "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _numeric_date(claims: Mapping[str, object], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise authorization_failed()
    return float(value)


async def verify_jwt(token: str, store: Store, *, now: float | None = None) -> Principal:
    """Verify a service-account JWT and return whom it authenticates.

    Args:
        token: the compact JWS from ``Authorization: Bearer``.
        store: where the public keys are.
        now: current UNIX time (tests); default ``time.time()``.

    Raises:
        PlatformError: 100 for a malformed token, another algorithm, an unknown ``kid``, a
            bad signature, ``iss`` other than the key's account, a missing/ill-typed
            ``iat``/``exp``, ``iat`` more than :data:`CLOCK_SKEW` s in the future, ``exp``
            more than :data:`CLOCK_SKEW` s in the past, or ``exp - iat`` over
            :data:`MAX_TOKEN_LIFETIME`.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise authorization_failed() from None
    kid = header.get("kid")
    if header.get("alg") != JWT_ALGORITHM or not isinstance(kid, str) or not 0 < len(kid) <= 64:
        raise authorization_failed()
    key = await store.key_for_jwt(kid)
    if key is None:
        raise authorization_failed()
    try:
        # Signature only; the time claims are checked below with our own rules.
        claims = jwt.decode(token, key.public_key, algorithms=[JWT_ALGORITHM],
                            options={"verify_exp": False, "verify_iat": False,
                                     "verify_nbf": False, "verify_aud": False,
                                     "verify_iss": False})
    except jwt.PyJWTError:
        raise authorization_failed() from None
    iat = _numeric_date(claims, "iat")
    exp = _numeric_date(claims, "exp")
    current = time.time() if now is None else now
    if iat > current + CLOCK_SKEW or exp < current - CLOCK_SKEW:
        raise authorization_failed()
    if exp < iat or exp - iat > MAX_TOKEN_LIFETIME:
        raise authorization_failed()
    if str(claims.get("iss")) != str(key.account_id):
        raise authorization_failed()
    return Principal(AccountInfo(key.account_id, key.account_name),
                     permission_of(key.role_ids), key.key_id)


async def authenticate(params: Params, headers: Mapping[str, str], store: Store) -> Principal:
    """The default authenticator: a Bearer JWT when sent, else ``account_id`` + ``api_key``.

    With a JWT, an ``account_id`` parameter, if sent, must be the token's account.

    Raises:
        PlatformError: 100.
    """
    token = bearer_token(headers)
    if token is None:
        return await api_key_authenticator(params, headers, store)
    principal = await verify_jwt(token, store)
    raw_id = params.raw("account_id")
    if raw_id is not None and raw_id.strip() != str(principal.account.account_id):
        raise authorization_failed()
    return principal
