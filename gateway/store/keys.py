"""Service-account keys and roles (Voximplant HTTP API: CreateKey, GetKeys, UpdateKey,
DeleteKey, SetKeyRoles, GetKeyRoles, RemoveKeyRoles, GetRoles).

A key is an RSA key pair: the gateway keeps only the public half (PEM) and verifies
RS256 JWTs (RFC 7519 / RFC 7515) signed with the private half, which CreateKey hands
out exactly once. Roles are fixed by the gateway (:data:`ROLES`); each grants a
:class:`Permission` level and a key may hold several (the highest wins).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload

from gateway.store.errors import NotFound
from gateway.store.models import Account, ApiKey, ApiKeyRole

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.orm import Session, sessionmaker

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="_StoreBase")


class Permission(IntEnum):
    """What a caller may do; every platform_api method requires one level.

    ``READ``: Get* methods, GetCallHistory, StartScenarios, session logs.
    ``WRITE``: also change applications, scenarios (upload code), rules and secrets.
    ``ADMIN``: also manage service-account keys and their roles.
    """

    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(slots=True, frozen=True)
class Role:
    """A service-account role (Voximplant's RoleView: ``role_id``, ``role_name``)."""

    role_id: int
    role_name: str
    permission: Permission
    description: str


#: The gateway's roles. Names follow Voximplant's service-account roles where one fits.
ROLES: tuple[Role, ...] = (
    Role(1, "Owner", Permission.ADMIN,
         "Everything, including service-account keys and their roles."),
    Role(2, "Developer", Permission.WRITE,
         "Read and start sessions; change applications, scenarios, rules and secrets."),
    Role(3, "Viewer", Permission.READ,
         "Get* methods, GetCallHistory, session logs and StartScenarios."),
)
ROLES_BY_ID = {r.role_id: r for r in ROLES}
ROLES_BY_NAME = {r.role_name.lower(): r for r in ROLES}


def role_by_name(name: str) -> Role:
    """The role called ``name`` (case-insensitive). Raises :class:`NotFound`."""
    role = ROLES_BY_NAME.get(name.strip().lower())
    if role is None:
        raise NotFound("role", name)
    return role


def role_by_id(role_id: int) -> Role:
    """The role with ``role_id``. Raises :class:`NotFound`."""
    role = ROLES_BY_ID.get(role_id)
    if role is None:
        raise NotFound("role", role_id)
    return role


def permission_of(role_ids: Sequence[int]) -> Permission:
    """The highest permission any of ``role_ids`` grants (``NONE`` for no role)."""
    levels = [ROLES_BY_ID[r].permission for r in role_ids if r in ROLES_BY_ID]
    return max(levels, default=Permission.NONE)


@dataclass(slots=True)
class KeyInfo:
    """One key without its secret half (Voximplant's KeyView)."""

    key_id: str
    account_id: int
    key_name: str
    description: str
    created: datetime
    roles: list[Role] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class KeyForJwt:
    """What verifying a JWT needs: the key's account, public key PEM and roles."""

    key_id: str
    account_id: int
    account_name: str
    public_key: str
    role_ids: tuple[int, ...]


class _StoreBase:
    """Attributes the mixins use from :class:`gateway.store.repository.Store`."""

    _executor: ThreadPoolExecutor
    _sessions: sessionmaker[Session]


def offloaded(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], Awaitable[R]]:
    """Run a blocking store method on the store's database threads (as a coroutine)."""

    @functools.wraps(fn)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor,
                                          functools.partial(fn, self, *args, **kwargs))

    return wrapper


def _key_info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.key_id, row.account_id, row.key_name, row.description, row.created,
                   [ROLES_BY_ID[r.role_id] for r in row.roles if r.role_id in ROLES_BY_ID])


class KeysMixin(_StoreBase):
    """Key persistence, mixed into :class:`gateway.store.repository.Store`."""

    @staticmethod
    def _find_key(s: Session, account_id: int, key_id: str) -> ApiKey:
        row = s.scalars(select(ApiKey).options(selectinload(ApiKey.roles))
                        .where(ApiKey.account_id == account_id, ApiKey.key_id == key_id)
                        ).first()
        if row is None:
            raise NotFound("key", key_id)
        return row

    @offloaded
    def add_key(self, account_id: int, public_key_pem: str, *, key_name: str = "",
                description: str = "", role_ids: Sequence[int] = ()) -> KeyInfo:
        """CreateKey's storage half: a new key id holding ``public_key_pem``.

        Raises:
            NotFound: a role id does not exist (``kind == "role"``).
        """
        for rid in role_ids:
            role_by_id(rid)
        with self._sessions.begin() as s:
            row = ApiKey(key_id=str(uuid.uuid4()), account_id=account_id, key_name=key_name,
                         description=description, public_key=public_key_pem)
            row.roles = [ApiKeyRole(role_id=r) for r in dict.fromkeys(role_ids)]
            s.add(row)
            s.flush()
            return _key_info(row)

    @offloaded
    def key_for_jwt(self, key_id: str) -> KeyForJwt | None:
        """The key named by a JWT's ``kid`` (any account), or ``None``."""
        with self._sessions() as s:
            found = s.execute(select(ApiKey, Account.name)
                              .join(Account, Account.id == ApiKey.account_id)
                              .options(selectinload(ApiKey.roles))
                              .where(ApiKey.key_id == key_id)).first()
            if found is None:
                return None
            row, account_name = found
            return KeyForJwt(row.key_id, row.account_id, account_name, row.public_key,
                             tuple(r.role_id for r in row.roles))

    @offloaded
    def get_keys(self, account_id: int, *, key_id: str | None = None, offset: int = 0,
                 count: int = 20) -> tuple[list[KeyInfo], int]:
        """GetKeys: the account's keys (oldest first) and how many there are in all."""
        stmt = select(ApiKey).where(ApiKey.account_id == account_id)
        if key_id is not None:
            stmt = stmt.where(ApiKey.key_id == key_id)
        with self._sessions() as s:
            total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = s.scalars(stmt.options(selectinload(ApiKey.roles))
                             .order_by(ApiKey.created, ApiKey.key_id)
                             .offset(max(offset, 0)).limit(max(count, 0))).all()
            return [_key_info(r) for r in rows], total

    @offloaded
    def update_key(self, account_id: int, key_id: str, *, description: str | None = None,
                   key_name: str | None = None) -> KeyInfo:
        """UpdateKey. Raises :class:`NotFound`."""
        with self._sessions.begin() as s:
            row = self._find_key(s, account_id, key_id)
            if description is not None:
                row.description = description
            if key_name is not None:
                row.key_name = key_name
            s.flush()
            return _key_info(row)

    @offloaded
    def delete_key(self, account_id: int, key_id: str) -> None:
        """DeleteKey: the key stops working at once. Raises :class:`NotFound`."""
        with self._sessions.begin() as s:
            s.delete(self._find_key(s, account_id, key_id))

    @offloaded
    def set_key_roles(self, account_id: int, key_id: str, role_ids: Sequence[int], *,
                      remove: bool = False) -> KeyInfo:
        """SetKeyRoles (adds ``role_ids``) or, with ``remove``, RemoveKeyRoles.

        Raises:
            NotFound: no such key, or a role id does not exist.
        """
        for rid in role_ids:
            role_by_id(rid)
        with self._sessions.begin() as s:
            row = self._find_key(s, account_id, key_id)
            have = {r.role_id for r in row.roles}
            if remove:
                s.execute(delete(ApiKeyRole).where(ApiKeyRole.key_id == key_id,
                                                   ApiKeyRole.role_id.in_(list(role_ids))))
            else:
                for rid in dict.fromkeys(role_ids):
                    if rid not in have:
                        s.add(ApiKeyRole(key_id=key_id, role_id=rid))
            s.flush()
            s.expire(row)
            return _key_info(self._find_key(s, account_id, key_id))
