"""Store plumbing: URL/driver mapping, API key hashing, migrations agreeing with the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gateway.store.db import (
    MIGRATIONS_DIR,
    create_engine,
    engine_url,
    head_revision,
    run_migrations,
)
from gateway.store.models import Base
from gateway.store.repository import hash_api_key, open_store, verify_api_key


@pytest.mark.parametrize(("given", "driver"), [
    ("sqlite:///./x.db", "sqlite"),
    ("sqlite+aiosqlite:///./x.db", "sqlite"),
    ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg"),
    ("postgres://postgres@127.0.0.1/test", "postgresql+psycopg"),
    ("postgresql+asyncpg://u@h/d", "postgresql+psycopg"),
])
def test_engine_url_maps_plain_urls_to_the_store_driver(given: str, driver: str) -> None:
    assert engine_url(given).drivername == driver


def test_api_key_hash_is_salted_and_verifies() -> None:
    a, b = hash_api_key("k3y"), hash_api_key("k3y")
    assert a != b  # per-hash salt
    assert "k3y" not in a
    assert verify_api_key("k3y", a) and verify_api_key("k3y", b)
    assert not verify_api_key("other", a)
    assert not verify_api_key("k3y", "garbage")


def test_migration_scripts_are_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()


def test_migrations_create_exactly_the_models_schema(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        run_migrations(engine)
        run_migrations(engine)  # idempotent at head
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
            assert ctx.get_current_revision() == head_revision() == "0005"
            assert "alembic_version" in inspect(conn).get_table_names()
    finally:
        engine.dispose()


async def test_open_store_twice_on_one_file(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    first = await open_store(url)
    await first.ensure_account(1, "one", "key-1")
    await first.close()
    second = await open_store(url)
    try:
        assert (await second.authenticate(1, "key-1")) is not None
    finally:
        await second.close()


async def test_in_memory_sqlite_works() -> None:
    store = await open_store("sqlite://")
    try:
        await store.ensure_account(5, "mem", "k")
        assert (await store.authenticate(5, "k")) is not None
    finally:
        await store.close()
