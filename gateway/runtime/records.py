"""Plain records and protocols shared by the runtime, the store and the API.

The runtime never imports the store or the API: it is handed an object that
satisfies :class:`SessionStore`, and the API is handed an object satisfying
:class:`ScenarioRunner`. ``server.py`` wires them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(slots=True)
class ScenarioSource:
    """One scenario's Python source, as stored."""

    scenario_id: int
    name: str
    script: str


@dataclass(slots=True)
class RuleMatch:
    """A routing rule resolved to what a session needs to run."""

    account_id: int
    application_id: int
    application_name: str
    rule_id: int
    rule_name: str
    scenarios: list[ScenarioSource]


@dataclass(slots=True)
class CallRecord:
    """CDR of one call leg (fields follow Voximplant's CallInfoType).

    ``duration`` is answered time in whole seconds; ``result_code`` the final SIP
    code (200 for answered calls); ``finish_reason`` is one of "normal",
    "busy", "no_answer", "failed", "cancelled", "error".
    """

    call_id: str
    start_time: datetime
    incoming: bool
    local_number: str
    remote_number: str
    duration: int = 0
    successful: bool = False
    result_code: int = 0
    finish_reason: str = ""
    end_time: datetime | None = None
    direction: str = ""  # "in" / "out"


@dataclass(slots=True)
class SessionRecord:
    """CDR of one session (fields follow Voximplant's CallSessionInfoType)."""

    session_id: str
    account_id: int
    application_id: int
    application_name: str
    rule_id: int
    rule_name: str
    start_date: datetime
    custom_data: str | None = None
    initiator_address: str = ""
    duration: int = 0
    finish_reason: str = ""
    end_date: datetime | None = None
    calls: list[CallRecord] = field(default_factory=list)
    call_session_history_id: int | None = None
    #: Per-turn Voice AI latency records (``VoiceAIEvents.TurnLatency`` payloads: vendor,
    #: turn, and the ms figures the vendor exposes), in the order they happened.
    voice_ai_turns: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class RecordingRecord:
    """One finished recording (fields follow Voximplant's RecordType, plus where it is).

    ``record_key`` is the recorder's id, the key in its URL (``/records/<key>``);
    ``record_id`` is the number the store gives it. ``path`` is relative to the
    recordings directory (``<account_id>/<session_id>/<key>.<format>``); ``duration``
    is in seconds; ``file_size`` in bytes.
    """

    record_key: str
    account_id: int
    session_id: str
    call_id: str | None
    record_name: str
    path: str
    start_time: datetime
    duration: float
    file_size: int
    format: str  # "wav" / "mp3"
    channels: int = 1
    sample_rate: int = 8000
    record_id: int | None = None


class SessionStore(Protocol):
    """Persistence the runtime needs (implemented in ``gateway.store``)."""

    async def match_inbound_rule(self, number: str) -> RuleMatch | None:
        """First rule (all applications, in rule order) whose pattern fully matches ``number``."""

    async def session_started(self, record: SessionRecord) -> int:
        """Persist a new session; returns its ``call_session_history_id``."""

    async def session_finished(self, record: SessionRecord) -> None:
        """Persist the final CDR (duration, finish_reason, calls) of a session."""

    async def secret_values(self, account_id: int) -> dict[str, str]:
        """Every secret of the account, name -> value (for ``VoxEngine.get_secret_value``)."""

    async def recording_finished(self, record: RecordingRecord) -> int:
        """Register a finished recording (file closed); returns its ``record_id``.
        Optional: recorders skip registration when the store lacks it."""


@dataclass(slots=True, frozen=True)
class StoredKey:
    """One ApplicationStorage item as stored: ``expire_at`` is an aware UTC datetime."""

    key: str
    value: str
    expire_at: datetime


class AppStorageStore(Protocol):
    """Persistence of ``ApplicationStorage`` (per application); implemented in
    ``gateway.store.app_storage``. Expired items are never returned."""

    async def app_storage_get(self, application_id: int, key: str) -> StoredKey | None:
        """The live item ``key`` of the application, or None."""

    async def app_storage_put(self, application_id: int, key: str, value: str,
                              expire_at: datetime) -> StoredKey:
        """Create or replace item ``key``."""

    async def app_storage_delete(self, application_id: int, key: str) -> StoredKey | None:
        """Delete item ``key``; returns what was deleted (None if it was not there)."""

    async def app_storage_keys(self, application_id: int, prefix: str,
                               limit: int) -> list[str]:
        """Live keys starting with ``prefix`` (sorted), at most ``limit``."""


@dataclass(slots=True)
class StartedSession:
    """What StartScenarios returns for a newly started session."""

    session_id: str
    call_session_history_id: int
    media_session_access_url: str
    media_session_access_secure_url: str


@dataclass(slots=True)
class AccessResponse:
    """HTTP reply produced by an ``AppEvents.HttpRequest`` handler."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


class ScenarioRunner(Protocol):
    """What the management API needs from the runtime."""

    async def start_scenarios(self, match: RuleMatch, custom_data: str | None) -> StartedSession:
        """Start a session running ``match``'s scenarios with ``custom_data``."""

    async def access_request(self, session_id: str, secret: str, method: str, path: str,
                             content: bytes, headers: dict[str, str]) -> AccessResponse:
        """Deliver an HTTP request to a session's access URL (404 if unknown or ended)."""

    def active_sessions(self, account_id: int) -> int:
        """How many sessions of ``account_id`` are running now."""

    async def session_log(self, account_id: int, session_id: str) -> str | None:
        """The log of one of ``account_id``'s sessions, or None (unknown or not theirs)."""
