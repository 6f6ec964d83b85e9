"""Persistent state of the gateway (SQLAlchemy 2 ORM; SQLite by default, PostgreSQL to scale out).

``open_store(database_url)`` migrates the database to the newest Alembic revision and
returns a :class:`Store`, which implements :class:`gateway.runtime.records.SessionStore`
and the Voximplant-style management operations used by ``gateway.api``.
"""

from gateway.store.errors import AlreadyExists, NotFound, StoreError
from gateway.store.records import (
    AccountInfo,
    ApplicationInfo,
    Page,
    RuleInfo,
    ScenarioInfo,
    ScenarioRef,
)
from gateway.store.repository import Store, open_store

__all__ = [
    "AccountInfo",
    "AlreadyExists",
    "ApplicationInfo",
    "NotFound",
    "Page",
    "RuleInfo",
    "ScenarioInfo",
    "ScenarioRef",
    "Store",
    "StoreError",
    "open_store",
]
