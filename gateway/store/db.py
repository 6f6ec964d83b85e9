"""Database URLs, engines and Alembic migrations run from code.

Settings carry plain SQLAlchemy URLs (``sqlite:///./voice-gateway.db``,
``postgresql://user@host/db``). The store runs SQLAlchemy's synchronous engine on
a dedicated worker thread pool (see :mod:`gateway.store.repository`), so URLs map
to the stdlib ``sqlite`` driver and to psycopg 3 (``postgresql+psycopg``); async
driver spellings (``sqlite+aiosqlite``, ``postgresql+asyncpg``) are accepted and
mapped back. Migrations are upgraded to Alembic's ``head`` with the scripts shipped
inside the package (Alembic cookbook, "Sharing a Connection across one or more
programmatic migration commands").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import StaticPool

#: Folder holding env.py and versions/ (package data).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Key of the PostgreSQL advisory lock that serialises migrations across gateway nodes.
_MIGRATION_LOCK_KEY = 0x56475753  # "VGWS"

_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def engine_url(database_url: str | URL) -> URL:
    """Map a database URL to the driver the store uses.

    Args:
        database_url: e.g. ``sqlite:///./x.db`` or ``postgresql://postgres@127.0.0.1/test``.

    Returns:
        The URL with ``sqlite`` (stdlib) or ``postgresql+psycopg`` as driver; other
        backends are returned unchanged.
    """
    url = make_url(database_url)
    driver = _DRIVERS.get(url.drivername)
    return url.set(drivername=driver) if driver else url


def is_sqlite(database_url: str | URL) -> bool:
    """Whether ``database_url`` names a SQLite database."""
    return make_url(database_url).get_backend_name() == "sqlite"


def create_engine(database_url: str | URL, *, pool_size: int = 8) -> Engine:
    """Create the engine for ``database_url`` (plain or driver-qualified form).

    SQLite gets ``PRAGMA foreign_keys=ON`` on every connection (cascades rely on it)
    and may be used from a thread other than the one that opened it; an in-memory
    SQLite database uses one shared connection.

    Args:
        database_url: the database to open.
        pool_size: connections kept open (PostgreSQL); match the worker thread count.
    """
    url = engine_url(database_url)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        if url.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = pool_size
    engine = sa_create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config() -> Config:
    """An Alembic ``Config`` pointing at the packaged migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision id among the packaged migration scripts ("0003" ...)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migration scripts found")
    return head


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        # Several nodes may start at once against one database: one migrates, others wait.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def run_migrations(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (blocking; default ``head``)."""
    with engine.begin() as conn:
        _upgrade(conn, revision)
