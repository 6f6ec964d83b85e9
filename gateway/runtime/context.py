"""The session whose scenario code is running now (a context variable).

Tasks copy the context when created, so handlers and everything they await see
the session that started them. Connectors use it to find their owner.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

#: The ``Session`` running the current scenario code, or unset outside scenarios.
current_session: ContextVar[Any] = ContextVar("current_session")
