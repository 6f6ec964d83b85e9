"""ApplicationStorage persistence: key-value pairs per application with an expiry time.

Implements :class:`gateway.runtime.records.AppStorageStore` for the scenario global
``ApplicationStorage`` (VoxEngine's module of that name; Voximplant's key-value storage).
Keys are unique per application; an item whose ``expire_at`` has passed is treated as
absent by every read and deleted lazily: a write deletes the application's expired items
first. A write is one upsert (``INSERT ... ON CONFLICT DO UPDATE``, on SQLite and on
PostgreSQL), so two sessions writing the same key at once cannot collide.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.runtime.records import StoredKey
from gateway.store.keys import _StoreBase, offloaded
from gateway.store.models import AppStorageItem, utcnow


class AppStorageMixin(_StoreBase):
    """ApplicationStorage persistence, mixed into :class:`gateway.store.repository.Store`."""

    _engine: Any

    @offloaded
    def app_storage_get(self, application_id: int, key: str) -> StoredKey | None:
        """The live item ``key`` of the application, or None (missing or expired)."""
        with self._sessions() as s:
            row = s.execute(
                select(AppStorageItem.storage_value, AppStorageItem.expire_at).where(
                    AppStorageItem.application_id == application_id,
                    AppStorageItem.storage_key == key,
                    AppStorageItem.expire_at > utcnow())).first()
        return None if row is None else StoredKey(key, row[0], row[1])

    @offloaded
    def app_storage_put(self, application_id: int, key: str, value: str,
                        expire_at: datetime) -> StoredKey:
        """Create or replace item ``key`` (and purge the application's expired items)."""
        now = utcnow()
        values = {"application_id": application_id, "storage_key": key,
                  "storage_value": value, "expire_at": expire_at, "created": now,
                  "modified": now}
        dialect = self._engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(AppStorageItem).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[AppStorageItem.application_id, AppStorageItem.storage_key],
            set_={"storage_value": stmt.excluded.storage_value,
                  "expire_at": stmt.excluded.expire_at, "modified": stmt.excluded.modified})
        with self._sessions.begin() as s:
            s.execute(delete(AppStorageItem).where(
                AppStorageItem.application_id == application_id,
                AppStorageItem.expire_at <= now))
            s.execute(stmt)
        return StoredKey(key, value, expire_at)

    @offloaded
    def app_storage_delete(self, application_id: int, key: str) -> StoredKey | None:
        """Delete item ``key``; returns the live item deleted, or None."""
        with self._sessions.begin() as s:
            row = s.scalars(select(AppStorageItem).where(
                AppStorageItem.application_id == application_id,
                AppStorageItem.storage_key == key)).first()
            if row is None:
                return None
            found = (StoredKey(key, row.storage_value, row.expire_at)
                     if row.expire_at > utcnow() else None)
            s.delete(row)
        return found

    @offloaded
    def app_storage_keys(self, application_id: int, prefix: str, limit: int) -> list[str]:
        """Live keys of the application starting with ``prefix``, sorted, at most ``limit``.

        The prefix match is exact (case-sensitive, no wildcards) and the order is by code
        point on both backends (SQLite's LIKE would ignore case; PostgreSQL's default
        collation would sort by locale).
        """
        key = AppStorageItem.storage_key
        stmt = select(key).where(AppStorageItem.application_id == application_id,
                                 AppStorageItem.expire_at > utcnow())
        if prefix:
            stmt = stmt.where(func.substr(key, 1, len(prefix)) == prefix)
        order = key.collate("C") if self._engine.dialect.name == "postgresql" else key
        with self._sessions() as s:
            return list(s.scalars(stmt.order_by(order).limit(max(limit, 0))).all())
