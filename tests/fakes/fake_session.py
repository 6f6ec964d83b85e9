"""A session stand-in for connector tests: owns Voice AI clients and keeps their CDR.

It has what a connector asks of its owning session: ``id``, ``record`` (a real
:class:`~gateway.runtime.records.SessionRecord`, whose ``voice_ai_turns`` collects
``VoiceAIEvents.TurnLatency`` records), ``register_unit``, ``handler_failed`` and
``track_task``. Create clients inside :meth:`FakeSession.current` so they take it
as their owner, as they take the running session in a scenario.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from gateway.runtime.context import current_session
from gateway.runtime.records import SessionRecord


class FakeSession:
    """Owner of the clients created inside :meth:`current`.

    Attributes:
        record: the session CDR; ``record.voice_ai_turns`` is what connectors fill.
        units: units registered with the session.
        failures: ``(exception, where)`` of every handler that raised.
    """

    def __init__(self, session_id: str = "sess-fake") -> None:
        self.id = session_id
        self.record = SessionRecord(
            session_id=session_id, account_id=1, application_id=1,
            application_name="app", rule_id=1, rule_name="rule",
            start_date=datetime.now(UTC))
        self.units: list[Any] = []
        self.failures: list[tuple[BaseException, str]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    @contextmanager
    def current(self) -> Iterator[FakeSession]:
        """Make this the running session (``current_session``) inside the block."""
        token = current_session.set(self)
        try:
            yield self
        finally:
            current_session.reset(token)

    def register_unit(self, unit: Any) -> None:
        self.units.append(unit)

    def handler_failed(self, exc: BaseException, where: str) -> None:
        self.failures.append((exc, where))

    def track_task(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
