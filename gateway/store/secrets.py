"""Account secrets (Voximplant HTTP API: AddSecret, GetSecrets, SetSecretInfo, DelSecret),
read by scenarios with ``VoxEngine.get_secret_value(name)``.

Values at rest: with ``VGW_SECRETS_KEY`` set (:meth:`SecretsMixin.set_secrets_key`) a
value is stored as ``fernet:<token>`` (Fernet: AES-128-CBC + HMAC-SHA256, from
``cryptography``); without it as ``plain:<value>``, i.e. readable by anyone who can
read the database. Values written in plain text stay readable after a key is set
(rewrite them with SetSecretInfo to encrypt them); encrypted values need the key they
were written with. Values are never logged and never returned by the API.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.store.errors import AlreadyExists, NotFound
from gateway.store.keys import _StoreBase, offloaded
from gateway.store.models import Secret, utcnow

log = logging.getLogger(__name__)

_FERNET = "fernet:"
_PLAIN = "plain:"


@dataclass(slots=True)
class SecretInfo:
    """A secret without its value (Voximplant's SecretListItem)."""

    secret_id: int
    secret_name: str
    description: str
    created: datetime
    modified: datetime


def fernet_from_setting(key: str) -> Fernet:
    """A Fernet for ``VGW_SECRETS_KEY``: a Fernet key (``Fernet.generate_key()``) is used
    as is; any other string is hashed (SHA-256) into one, so use a long random string."""
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def _info(row: Secret) -> SecretInfo:
    return SecretInfo(row.id, row.secret_name, row.description, row.created, row.modified)


class SecretsMixin(_StoreBase):
    """Secret persistence, mixed into :class:`gateway.store.repository.Store`."""

    _secrets_fernet: Fernet | None = None

    def set_secrets_key(self, key: str | None) -> None:
        """Encrypt secret values written from now on with ``key`` (``VGW_SECRETS_KEY``)."""
        self._secrets_fernet = fernet_from_setting(key) if key else None

    def _seal(self, value: str) -> str:
        if self._secrets_fernet is None:
            return _PLAIN + value
        return _FERNET + self._secrets_fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def _open(self, stored: str) -> str | None:
        if stored.startswith(_PLAIN):
            return stored[len(_PLAIN):]
        if stored.startswith(_FERNET) and self._secrets_fernet is not None:
            try:
                return self._secrets_fernet.decrypt(stored[len(_FERNET):].encode("ascii")
                                                    ).decode("utf-8")
            except InvalidToken:
                return None
        return None

    @staticmethod
    def _find_secret(s: Session, account_id: int, secret_id: int | None,
                     secret_name: str | None) -> Secret:
        stmt = select(Secret).where(Secret.account_id == account_id)
        if secret_id is not None:
            stmt = stmt.where(Secret.id == secret_id)
        if secret_name is not None:
            stmt = stmt.where(Secret.secret_name == secret_name)
        row = s.scalars(stmt).first()
        if row is None:
            raise NotFound("secret", secret_id if secret_id is not None else secret_name)
        return row

    @offloaded
    def add_secret(self, account_id: int, secret_name: str, secret_value: str, *,
                   description: str = "") -> SecretInfo:
        """AddSecret. Raises :class:`AlreadyExists` if the account has that name."""
        try:
            with self._sessions.begin() as s:
                taken = s.scalar(select(Secret.id).where(Secret.account_id == account_id,
                                                         Secret.secret_name == secret_name))
                if taken is not None:
                    raise AlreadyExists("secret", secret_name)
                row = Secret(account_id=account_id, secret_name=secret_name,
                             description=description, secret_value=self._seal(secret_value))
                s.add(row)
                s.flush()
                return _info(row)
        except IntegrityError as exc:
            raise AlreadyExists("secret", secret_name) from exc

    @offloaded
    def get_secrets(self, account_id: int, *, secret_name_part: str | None = None,
                    offset: int = 0, count: int = 20) -> tuple[list[SecretInfo], int]:
        """GetSecrets: names and descriptions (never values), by id, and the total count."""
        stmt = select(Secret).where(Secret.account_id == account_id)
        if secret_name_part:
            escaped = (secret_name_part.replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            stmt = stmt.where(Secret.secret_name.like(f"%{escaped}%", escape="\\"))
        with self._sessions() as s:
            total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = s.scalars(stmt.order_by(Secret.id).offset(max(offset, 0))
                             .limit(max(count, 0))).all()
            return [_info(r) for r in rows], total

    @offloaded
    def set_secret_info(self, account_id: int, *, secret_id: int | None = None,
                        secret_name: str | None = None, new_secret_name: str | None = None,
                        secret_value: str | None = None,
                        description: str | None = None) -> SecretInfo:
        """SetSecretInfo: rename, change the value and/or the description.

        Raises:
            NotFound: no such secret; AlreadyExists: ``new_secret_name`` is taken.
        """
        try:
            with self._sessions.begin() as s:
                row = self._find_secret(s, account_id, secret_id, secret_name)
                if new_secret_name is not None and new_secret_name != row.secret_name:
                    taken = s.scalar(select(Secret.id).where(
                        Secret.account_id == account_id, Secret.secret_name == new_secret_name))
                    if taken is not None:
                        raise AlreadyExists("secret", new_secret_name)
                    row.secret_name = new_secret_name
                if secret_value is not None:
                    row.secret_value = self._seal(secret_value)
                if description is not None:
                    row.description = description
                row.modified = utcnow()
                s.flush()
                return _info(row)
        except IntegrityError as exc:
            raise AlreadyExists("secret", new_secret_name or "") from exc

    @offloaded
    def del_secrets(self, account_id: int, *, secret_ids: Sequence[int] = (),
                    secret_names: Sequence[str] = ()) -> int:
        """DelSecret: delete by ids and/or names; all or nothing. Returns how many.

        Raises:
            NotFound: one of them does not exist in the account (nothing is deleted).
        """
        with self._sessions.begin() as s:
            rows = [self._find_secret(s, account_id, i, None) for i in secret_ids]
            rows += [self._find_secret(s, account_id, None, n) for n in secret_names]
            unique = {r.id: r for r in rows}
            for row in unique.values():
                s.delete(row)
            return len(unique)

    @offloaded
    def secret_values(self, account_id: int) -> dict[str, str]:
        """Every readable secret of the account, name -> value (``get_secret_value``).

        A value that cannot be decrypted (written under another ``VGW_SECRETS_KEY``, or
        none is set now) is left out and its *name* logged as a warning.
        """
        with self._sessions() as s:
            rows = s.execute(select(Secret.secret_name, Secret.secret_value)
                             .where(Secret.account_id == account_id)).all()
        values: dict[str, str] = {}
        for name, stored in rows:
            value = self._open(stored)
            if value is None:
                log.warning("secret %r of account %s cannot be decrypted (VGW_SECRETS_KEY "
                            "missing or changed)", name, account_id)
                continue
            values[name] = value
        return values
