"""Alembic environment of the gateway store (Alembic's generic template).

Used two ways:

* from code (:func:`gateway.store.db.run_migrations`), which hands over an open
  connection in ``config.attributes["connection"]``;
* from the command line, ``alembic -c gateway/store/alembic.ini upgrade head``, which
  reads ``VGW_DATABASE_URL`` or ``sqlalchemy.url`` from the ini and maps it to the
  store's driver.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection, make_url

from gateway.store.db import create_engine
from gateway.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configured_url() -> str:
    url = os.environ.get("VGW_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set VGW_DATABASE_URL or sqlalchemy.url")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    engine = create_engine(_configured_url())
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=make_url(_configured_url()),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_shared = config.attributes.get("connection")
if _shared is not None:
    _run(_shared)
elif context.is_offline_mode():
    _run_offline()
else:
    _run_online()
