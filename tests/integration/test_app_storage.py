"""ApplicationStorage persistence (gateway.store.app_storage) on SQLite and PostgreSQL:
upsert, expiry, exact prefixes, code-point order, concurrent writers, cascade."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from gateway.store import open_store
from gateway.store.models import AppStorageItem
from tests.integration.test_store_postgres import pg_url  # noqa: F401 - fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kv.db'}"
    return request.getfixturevalue("pg_url")


async def test_application_storage_round_trip(db_url: str) -> None:
    store = await open_store(db_url)
    try:
        await store.ensure_account(1, "one", "key")
        app = (await store.add_application(1, "kv")).application_id
        other = (await store.add_application(1, "kv2")).application_id
        now = datetime.now(UTC).replace(microsecond=0)
        later = now + timedelta(hours=1)

        put = await store.app_storage_put(app, "ns:b", "v1", later)
        assert (put.key, put.value, put.expire_at) == ("ns:b", "v1", later)
        got = await store.app_storage_get(app, "ns:b")
        assert got is not None and got.value == "v1" and got.expire_at == later
        # upsert: same key, new value and expiry; one row
        await store.app_storage_put(app, "ns:b", "v2", later + timedelta(hours=1))
        got = await store.app_storage_get(app, "ns:b")
        assert got is not None and got.value == "v2"
        assert got.expire_at == later + timedelta(hours=1)
        assert await store.app_storage_get(other, "ns:b") is None

        for key in ("ns:a", "ns:B", "ns_x", "NS:c", "other", "n%s:z"):
            await store.app_storage_put(app, key, key, later)
        # exact, case-sensitive prefixes (no LIKE wildcards), code-point order
        assert await store.app_storage_keys(app, "ns:", 100) == ["ns:B", "ns:a", "ns:b"]
        assert await store.app_storage_keys(app, "n%", 100) == ["n%s:z"]
        assert await store.app_storage_keys(app, "ns_", 100) == ["ns_x"]
        assert await store.app_storage_keys(app, "", 3) == ["NS:c", "n%s:z", "ns:B"]

        # expired items are never returned, and are purged by the next write
        await store.app_storage_put(app, "old", "x", now - timedelta(seconds=1))
        assert await store.app_storage_get(app, "old") is None
        assert "old" not in await store.app_storage_keys(app, "", 100)
        assert await store.app_storage_delete(app, "old") is None
        await store.app_storage_put(app, "old", "x", now - timedelta(seconds=1))
        await store.app_storage_put(app, "fresh", "y", later)

        def count_rows() -> int:
            with store._sessions() as s:
                return s.scalar(select(func.count()).select_from(AppStorageItem)
                                .where(AppStorageItem.storage_key == "old")) or 0

        assert await asyncio.to_thread(count_rows) == 0

        deleted = await store.app_storage_delete(app, "ns:a")
        assert deleted is not None and deleted.value == "ns:a"
        assert await store.app_storage_delete(app, "ns:a") is None

        # concurrent writers of one key never collide (one upsert each)
        await asyncio.gather(*(store.app_storage_put(app, "hot", str(i), later)
                               for i in range(20)))
        hot = await store.app_storage_get(app, "hot")
        assert hot is not None and hot.value in {str(i) for i in range(20)}

        await store.del_applications(1, application_ids=[app])
        assert await store.app_storage_keys(app, "", 100) == []
    finally:
        await store.close()
