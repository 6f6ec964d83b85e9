"""The store on PostgreSQL: migrations to head, schema equal to the models, a full round trip.

Runs against ``VGW_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
inside a uniquely named database created and dropped by the test. When PostgreSQL
cannot be reached the test is skipped, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.store import open_store
from gateway.store.db import create_engine, engine_url, head_revision
from gateway.store.models import Base
from tests.integration.store_roundtrip import store_round_trip
from tests.peers import peer_unavailable

ADMIN_URL = os.environ.get("VGW_TEST_POSTGRES_URL",
                           "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable(reason: str) -> None:
    peer_unavailable(f"PostgreSQL is not reachable at "
                     f"{make_url(ADMIN_URL).render_as_string()}: {reason}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh database, dropped afterwards."""
    name = f"vgw_test_{uuid.uuid4().hex[:12]}"
    admin = sa_create_engine(engine_url(ADMIN_URL), isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # driver missing, server down, auth refused
        admin.dispose()
        _unavailable(str(exc).splitlines()[0])
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


async def test_migrations_and_round_trip_on_postgres(pg_url: str) -> None:
    store = await open_store(pg_url)
    try:
        assert store.dialect == "postgresql"
        await store_round_trip(store)
    finally:
        await store.close()

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
            assert ctx.get_current_revision() == head_revision() == "0005"
    finally:
        engine.dispose()


async def test_concurrent_startups_migrate_once(pg_url: str) -> None:
    stores = await asyncio.gather(open_store(pg_url), open_store(pg_url), open_store(pg_url))
    try:
        await stores[0].ensure_account(1, "a", "k")
        assert await stores[2].authenticate(1, "k") is not None
    finally:
        for st in stores:
            await st.close()
