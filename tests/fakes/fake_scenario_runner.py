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

    async def start_scenarios(self, match: RuleMatch, custom_data: str | None) -> StartedSession:
        if self.fail_with is not None:
            raise self.fail_with
        self.started.append((match, custom_data))
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
