"""``ApplicationStorage`` in scenario globals: key-value pairs persisted per application.

VoxEngine's ``ApplicationStorage`` module in snake_case; every method is a coroutine
(VoxEngine's return Promises):

* ``await ApplicationStorage.get(key)`` -> :class:`StorageKey` or None;
* ``await ApplicationStorage.put(key, value, ttl)`` -> :class:`StorageKey` (creates or
  replaces; ``ttl`` in seconds, default 30 days);
* ``await ApplicationStorage.delete(key)`` (also ``remove``) -> the deleted
  :class:`StorageKey` with ``ttl`` 0, or None when there was no such key;
* ``await ApplicationStorage.keys(pattern)`` -> :class:`StoragePage` of the keys that
  begin with ``pattern`` (a namespace such as ``"test:"``), sorted.

Keys are unique within an application (every session of any rule of the application
sees the same items). Voximplant's documented limits apply: keys up to 200 characters,
values up to 2000 characters, ``ttl`` from 0 to 7,776,000 s (90 days; larger values are
rounded down to 90 days), default 2,592,000 s (30 days). Expired keys are never
returned. Storage works until ``AppEvents.Terminated``; after it, calls raise.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.runtime.records import AppStorageStore, StoredKey
    from gateway.runtime.session import Session

#: Longest key, characters (Voximplant).
MAX_KEY_CHARS = 200
#: Longest value, characters (Voximplant).
MAX_VALUE_CHARS = 2000
#: Longest ttl, seconds: 90 days (Voximplant); larger values are rounded down to it.
MAX_TTL = 7_776_000
#: ttl when none is given, seconds: 30 days (Voximplant).
DEFAULT_TTL = 2_592_000
#: Most keys one ``keys()`` call returns.
MAX_KEYS_PER_PAGE = 1000


class StorageUnavailable(GatewayError):
    """The gateway runs with a store that does not persist ApplicationStorage."""


@dataclass(slots=True, frozen=True)
class StorageKey:
    """One key-value pair (VoxEngine's ``StorageKey``).

    Attributes:
        key: the key.
        value: its value.
        ttl: seconds until it expires (0 for a deleted key).
        expire_at: when it expires, Unix time in whole seconds (VoxEngine's ``expireAt``).
    """

    key: str
    value: str
    ttl: int
    expire_at: int

    def __getitem__(self, item: str) -> Any:
        return getattr(self, item)


@dataclass(slots=True)
class StoragePage:
    """What ``keys()`` returns (VoxEngine's ``StoragePage``): ``keys`` is a sorted list.

    ``truncated`` is True when more than :data:`MAX_KEYS_PER_PAGE` keys matched; narrow
    the pattern to see the rest. Iterating a page iterates its keys.
    """

    keys: list[str] = field(default_factory=list)
    truncated: bool = False

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self.keys


def _key(stored: StoredKey, now: datetime, deleted: bool = False) -> StorageKey:
    ttl = 0 if deleted else max(0, int((stored.expire_at - now).total_seconds()))
    return StorageKey(stored.key, stored.value, ttl, int(stored.expire_at.timestamp()))


class ApplicationStorage:
    """``ApplicationStorage`` of one session (acts on the session's application).

    Args:
        session: the owning session (its ``match.application_id`` scopes the keys).
        store: the gateway store, or None when it does not persist storage.
    """

    def __init__(self, session: Session, store: AppStorageStore | None) -> None:
        self._session = session
        self._store = store

    def _ready(self, api: str) -> AppStorageStore:
        self._session.check_alive(f"ApplicationStorage.{api}")
        if self._store is None:
            raise StorageUnavailable(f"ApplicationStorage.{api}: this gateway's store does "
                                     "not persist ApplicationStorage",
                                     session_id=self._session.id)
        return self._store

    @staticmethod
    def _check_key(api: str, key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"ApplicationStorage.{api}: key must be a str, "
                            f"got {type(key).__name__}")
        if not key:
            raise ValueError(f"ApplicationStorage.{api}: key must not be empty")
        if len(key) > MAX_KEY_CHARS:
            raise ValueError(f"ApplicationStorage.{api}: key is {len(key)} characters, "
                             f"the limit is {MAX_KEY_CHARS}")
        return key

    def get(self, key: str) -> Coroutine[Any, Any, StorageKey | None]:
        """The live value of ``key``, or None (missing or expired).

        Raises:
            TypeError, ValueError: ``key`` is not a str of 1..200 characters.
            SessionEndedError: called after ``AppEvents.Terminated``.
        """
        store = self._ready("get")
        key = self._check_key("get", key)
        app_id = self._session.match.application_id

        async def run() -> StorageKey | None:
            stored = await store.app_storage_get(app_id, key)
            return None if stored is None else _key(stored, datetime.now(UTC))

        return run()

    def put(self, key: str, value: str, ttl: float = DEFAULT_TTL,
            ) -> Coroutine[Any, Any, StorageKey]:
        """Create or update ``key`` with ``value``, expiring in ``ttl`` seconds.

        Raises:
            TypeError, ValueError: key/value not str or too long; ttl negative.
            SessionEndedError: called after ``AppEvents.Terminated``.
        """
        store = self._ready("put")
        key = self._check_key("put", key)
        if not isinstance(value, str):
            raise TypeError(f"ApplicationStorage.put: value must be a str, "
                            f"got {type(value).__name__} (use json.dumps for structures)")
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"ApplicationStorage.put: value is {len(value)} characters, "
                             f"the limit is {MAX_VALUE_CHARS}")
        if isinstance(ttl, bool) or not isinstance(ttl, int | float):
            raise TypeError("ApplicationStorage.put: ttl must be a number of seconds")
        if ttl < 0:
            raise ValueError(f"ApplicationStorage.put: ttl must be 0..{MAX_TTL} seconds, "
                             f"got {ttl}")
        seconds = min(int(ttl), MAX_TTL)
        app_id = self._session.match.application_id

        async def run() -> StorageKey:
            now = datetime.now(UTC).replace(microsecond=0)
            stored = await store.app_storage_put(app_id, key, value,
                                                 now + timedelta(seconds=seconds))
            return StorageKey(stored.key, stored.value, seconds,
                              int(stored.expire_at.timestamp()))

        return run()

    def delete(self, key: str) -> Coroutine[Any, Any, StorageKey | None]:
        """Delete ``key``; returns it with ``ttl`` 0, or None when there was no such key.

        Raises:
            TypeError, ValueError: ``key`` is not a str of 1..200 characters.
            SessionEndedError: called after ``AppEvents.Terminated``.
        """
        store = self._ready("delete")
        key = self._check_key("delete", key)
        app_id = self._session.match.application_id

        async def run() -> StorageKey | None:
            stored = await store.app_storage_delete(app_id, key)
            return None if stored is None else _key(stored, datetime.now(UTC), deleted=True)

        return run()

    #: Same as :meth:`delete`.
    remove = delete

    def keys(self, pattern: str = "") -> Coroutine[Any, Any, StoragePage]:
        """Keys of the application that begin with ``pattern`` ("" for all), sorted.

        Raises:
            TypeError: ``pattern`` is not a str.
            SessionEndedError: called after ``AppEvents.Terminated``.
        """
        store = self._ready("keys")
        if pattern is None:
            pattern = ""
        if not isinstance(pattern, str):
            raise TypeError("ApplicationStorage.keys: pattern must be a str")
        app_id = self._session.match.application_id

        async def run() -> StoragePage:
            found = await store.app_storage_keys(app_id, pattern, MAX_KEYS_PER_PAGE + 1)
            return StoragePage(found[:MAX_KEYS_PER_PAGE], len(found) > MAX_KEYS_PER_PAGE)

        return run()
