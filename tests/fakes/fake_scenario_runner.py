"""Stand-in for the runtime's ``ScenarioRunner`` (gateway.runtime.records), for API tests.

Records every StartScenarios and access-URL request it receives; when given a
store it also records the session CDR the way the runtime does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.errors import GatewayError
from gateway.runtime.records import AccessResponse, RuleMatch, SessionRecord, StartedSession


@dataclass
class AccessCall:
    """One request delivered to a session's access URL."""

    session_id: str
    secret: str
    method: str
    path: str
    content: bytes
    headers: dict[str, str]


@dataclass
class FakeScenarioRunner:
    """Records calls; sessions are ``s1``, ``s2``, ... with secret ``secret-<n>``."""

    store: Any = None
    base_url: str = "http://gw.test"
    started: list[tuple[RuleMatch, str | None]] = field(default_factory=list)
    accesses: list[AccessCall] = field(default_factory=list)
    access_reply: AccessResponse = field(
        default_factory=lambda: AccessResponse(200, b'{"ok":true}', "application/json"))
    #: Raised by start_scenarios when set (to test the runtime refusing a session).
    fail_with: GatewayError | None = None
    #: Sessions in flight per account: started ones count until :meth:`finish`; tests may
    #: also set a number directly.
    in_flight: dict[int, int] = field(default_factory=dict)
    #: Session logs by (account id, session id), for ``session_log``.
    logs: dict[tuple[int, str], str] = field(default_factory=dict)

    async def start_scenarios(self, match: RuleMatch, custom_data: str | None) -> StartedSession:
        if self.fail_with is not None:
            raise self.fail_with
        self.started.append((match, custom_data))
        self.in_flight[match.account_id] = self.in_flight.get(match.account_id, 0) + 1
        n = len(self.started)
        session_id = f"s{n}"
        history_id = 1000 + n
        if self.store is not None:
            history_id = await self.store.session_started(SessionRecord(
                session_id=session_id, account_id=match.account_id,
                application_id=match.application_id, application_name=match.application_name,
                rule_id=match.rule_id, rule_name=match.rule_name, start_date=datetime.now(UTC),
                custom_data=custom_data))
        url = f"{self.base_url}/sessions/{session_id}/secret-{n}"
        return StartedSession(session_id=session_id, call_session_history_id=history_id,
                              media_session_access_url=url,
                              media_session_access_secure_url=url.replace("http://", "https://"))

    async def access_request(self, session_id: str, secret: str, method: str, path: str,
                             content: bytes, headers: dict[str, str]) -> AccessResponse:
        self.accesses.append(AccessCall(session_id, secret, method, path, content, headers))
        n = session_id[1:]
        if secret != f"secret-{n}" or not n.isdigit() or int(n) > len(self.started):
            return AccessResponse(404, b"no such session\n")
        return self.access_reply

    def active_sessions(self, account_id: int) -> int:
        """Sessions of ``account_id`` started and not yet finished."""
        return self.in_flight.get(account_id, 0)

    def finish(self, account_id: int) -> None:
        """One of ``account_id``'s sessions ends."""
        self.in_flight[account_id] = max(0, self.in_flight.get(account_id, 0) - 1)

    async def session_log(self, account_id: int, session_id: str) -> str | None:
        """The log stored in :attr:`logs`, or ``None`` (unknown or another account's)."""
        return self.logs.get((account_id, session_id))
