"""Authentication of platform_api calls (Voximplant's ``account_id`` + ``api_key``).

Kept behind one callable, :data:`Authenticator`, so other schemes (Voximplant's
service-account JWTs in ``Authorization: Bearer``) can be added without touching
the method handlers: pass another authenticator to ``create_app``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from gateway.api.errors import AUTHORIZATION_FAILED, PlatformError
from gateway.api.params import Params
from gateway.store import AccountInfo, Store

#: ``(params, lower-cased headers, store) -> account``; raises ``PlatformError(100)``.
Authenticator = Callable[[Params, Mapping[str, str], Store], Awaitable[AccountInfo]]


def authorization_failed() -> PlatformError:
    """Error 100, the same whatever was wrong (no hint for guessing)."""
    return PlatformError(AUTHORIZATION_FAILED, "Authorization failed")


async def api_key_authenticator(params: Params, headers: Mapping[str, str],
                                store: Store) -> AccountInfo:
    """Authenticate with the ``account_id`` and ``api_key`` parameters.

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
    return account
