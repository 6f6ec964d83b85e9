"""The session whose scenario code is running now (a context variable).

Tasks copy the context when created, so handlers and everything they await see
the session that started them. Connectors use it to find their owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any

#: The ``Session`` running the current scenario code, or unset outside scenarios.
current_session: ContextVar[Any] = ContextVar("current_session")


def spawn_owned(session: Any, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run ``coro`` as a task in ``session``'s context (``current_session`` set), kept
    by the session (``track_task``: cancelled when it ends). ``session`` may be None or
    a stand-in without those methods: the task then just runs."""
    run = getattr(session, "run_in_context", None)
    task = run(asyncio.ensure_future, coro) if callable(run) else asyncio.ensure_future(coro)
    track = getattr(session, "track_task", None)
    if callable(track):
        track(task)
    return task
