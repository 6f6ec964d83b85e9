"""In-memory ``SessionStore`` for runtime unit tests (the real one is gateway.store)."""

from __future__ import annotations

import re

from gateway.runtime.records import RuleMatch, SessionRecord


class MemoryStore:
    """Rules as (pattern, RuleMatch) pairs; CDRs kept in lists."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, RuleMatch]] = []
        self.started: list[SessionRecord] = []
        self.finished: list[SessionRecord] = []

    async def match_inbound_rule(self, number: str) -> RuleMatch | None:
        for pattern, match in self.rules:
            if re.fullmatch(pattern, number):
                return match
        return None

    async def session_started(self, record: SessionRecord) -> int:
        self.started.append(record)
        return len(self.started)

    async def session_finished(self, record: SessionRecord) -> None:
        self.finished.append(record)
