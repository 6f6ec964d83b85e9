"""``Runtime``: owns every session, routes inbound calls and serves StartScenarios.

It implements :class:`gateway.runtime.records.ScenarioRunner` for the API and the
adapters' incoming-call callback. It knows adapters only through the
:class:`Dialer` protocol and the store only through ``SessionStore``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.errors import GatewayError, ScenarioError
from gateway.runtime.call import Call
from gateway.runtime.constants import CallState
from gateway.runtime.leg import CallLeg, DigestCredentials
from gateway.runtime.limits import MAX_CALL_ATTEMPTS, MAX_UNANSWERED_CALLS, RefusedLeg
from gateway.runtime.net import DEFAULT_TIMEOUT, SharedHttpClient
from gateway.runtime.records import (
    AccessResponse,
    AppStorageStore,
    RuleMatch,
    SessionStore,
    StartedSession,
)
from gateway.runtime.session import Session
from gateway.runtime.watchdog import DEFAULT_HANDLER_TIME_LIMIT

if TYPE_CHECKING:
    from gateway.runtime.conference import Conference

log = logging.getLogger(__name__)

_SESSION_ID = re.compile(r"[0-9a-f]{32}")


class Dialer(Protocol):
    """An adapter that can place outbound legs (the SIP adapter)."""

    def new_outbound_leg(self, uri: str, *, callerid: str, display_name: str = "",
                         headers: dict[str, str] | None = None,
                         auth: DigestCredentials | None = None) -> Any:
        """Build (not send) an outbound leg; ``await leg.dial()`` sends it."""


class Runtime:
    """All sessions of one gateway process.

    Args:
        store: persistence (rules, CDRs).
        http_base_url: base of access URLs, e.g. ``http://127.0.0.1:8080``.
        dialer: adapter for outbound calls (set later with :attr:`dialer`).
        extra_globals: names added to every scenario's namespace (connector namespaces).
        idle_timeout: seconds a session may have no calls before it ends (60).
        trunk_uri: ``VGW_SIP_TRUNK_URI`` for ``call_pstn``.
        trunk_auth: trunk digest credentials.
        tls: True when the HTTP server serves https.
        logs_dir: where session logs are written when sessions end
            (``<logs_dir>/<account_id>/<session_id>.log``); None keeps them in memory only.
        http_handler_timeout: seconds an ``AppEvents.HttpRequest`` handler has before the
            caller gets 504.
        handler_time_limit: seconds scenario code may hold the event loop in one go
            before the watchdog interrupts it and ends its session (VoxEngine: 1 s);
            0 turns the watchdog off.
        max_call_attempts: outbound call attempts per session (50).
        max_unanswered_calls: outbound calls unanswered at once per session (10).
        net_drain_timeout: seconds a terminating session waits for its HTTP requests.
        recordings_dir: where recordings are written
            (``<recordings_dir>/<account_id>/<session_id>/<id>.<wav|mp3>``,
            ``VGW_RECORDINGS_DIR``); None: ``record()``/``create_recorder()`` raise
            ``RecorderError``.
    """

    def __init__(self, store: SessionStore, http_base_url: str, *, dialer: Dialer | None = None,
                 extra_globals: dict[str, Any] | None = None, idle_timeout: float = 60.0,
                 trunk_uri: str | None = None, trunk_auth: DigestCredentials | None = None,
                 tls: bool = False, logs_dir: str | Path | None = None,
                 http_handler_timeout: float = 5.0,
                 handler_time_limit: float = DEFAULT_HANDLER_TIME_LIMIT,
                 max_call_attempts: int = MAX_CALL_ATTEMPTS,
                 max_unanswered_calls: int = MAX_UNANSWERED_CALLS,
                 net_drain_timeout: float = DEFAULT_TIMEOUT,
                 recordings_dir: str | Path | None = None) -> None:
        self.store = store
        self.http_base_url = http_base_url.rstrip("/")
        self.dialer = dialer
        self.extra_globals = dict(extra_globals or {})
        self.idle_timeout = idle_timeout
        self.trunk_uri = trunk_uri
        self._trunk_auth = trunk_auth
        self.tls = tls
        self.logs_dir = Path(logs_dir) if logs_dir is not None else None
        self.http_handler_timeout = http_handler_timeout
        self.handler_time_limit = handler_time_limit
        self.max_call_attempts = max_call_attempts
        self.max_unanswered_calls = max_unanswered_calls
        self.net_drain_timeout = net_drain_timeout
        #: Root of recordings (sessions' recorders read it); None: recording is off.
        self.recordings_dir = Path(recordings_dir) if recordings_dir is not None else None
        #: The one HTTP client every session's ``Net`` uses.
        self.http_client = SharedHttpClient()
        #: Where ``ApplicationStorage`` persists (None: the store does not implement it).
        self.app_storage_store: AppStorageStore | None = (
            store if callable(getattr(store, "app_storage_get", None)) else None)  # type: ignore[assignment]
        self.sessions: dict[str, Session] = {}
        #: The most recently ended sessions (newest last), for logs and inspection.
        self.recent: deque[Session] = deque(maxlen=100)
        #: Named conferences (``VoxEngine.create_conference(name=...)``) by
        #: ``(account_id, name)``; each removes itself when it closes.
        self.conferences: dict[tuple[int, str], Conference] = {}

    # -- session lifecycle ----------------------------------------------------
    async def _new_session(self, match: RuleMatch, custom_data: str | None,
                           initiator: str) -> Session:
        session = Session(self, match, custom_data, initiator)
        secret_values = getattr(self.store, "secret_values", None)
        if secret_values is not None:
            session.secrets = await secret_values(match.account_id)
        session.record.call_session_history_id = await self.store.session_started(session.record)
        self.sessions[session.id] = session
        try:
            session.load(self.extra_globals)
        except ScenarioError as exc:
            session.handler_failed(exc, "scenario load")
        return session

    async def session_ended(self, session: Session) -> None:
        """Called by a session once it has ended: write its log and CDR, then forget it.

        The session stays in :attr:`sessions` until its CDR is stored, so whoever sees
        it gone can read its history.
        """
        if self.logs_dir is not None:
            try:
                await asyncio.to_thread(self._write_log, session)
            except OSError:
                log.exception("[session %s] writing the session log failed", session.id)
        try:
            await self.store.session_finished(session.record)
        except Exception:
            log.exception("[session %s] writing the CDR failed", session.id)
        finally:
            self.sessions.pop(session.id, None)
            self.recent.append(session)

    async def start_scenarios(self, match: RuleMatch, custom_data: str | None,
                              initiator: str = "") -> StartedSession:
        """StartScenarios: run ``match``'s scenarios in a new session with ``custom_data``."""
        session = await self._new_session(match, custom_data, initiator or "platform_api")
        if not session.ended and session._terminate_task is None:
            session.start()
        hid = session.record.call_session_history_id
        assert hid is not None
        return StartedSession(session.id, hid, session.access_url, session.secure_access_url)

    async def on_incoming(self, leg: CallLeg) -> bool:
        """An adapter's new inbound leg: route by the called user; False means 404."""
        match = await self.store.match_inbound_rule(leg.number)
        if match is None:
            log.info("inbound call %s to %r matches no rule", leg.id, leg.number)
            return False
        if not match.scenarios:
            log.warning("inbound call %s: rule %r has no scenario", leg.id, match.rule_name)
            return False
        session = await self._new_session(match, None, leg.callerid)
        call = session.add_call(leg)
        if session._terminate_task is not None:
            call.reject(500)
            return True
        session.start(call)
        return True

    def active_sessions(self, account_id: int) -> int:
        """How many sessions of ``account_id`` are running now."""
        return sum(1 for s in self.sessions.values() if s.match.account_id == account_id)

    def _log_path(self, account_id: int, session_id: str) -> Path | None:
        if self.logs_dir is None or not _SESSION_ID.fullmatch(session_id):
            return None
        return self.logs_dir / str(int(account_id)) / f"{session_id}.log"

    def _write_log(self, session: Session) -> None:
        path = self._log_path(session.match.account_id, session.id)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(session.log_lines) + "\n", encoding="utf-8")

    async def session_log(self, account_id: int, session_id: str) -> str | None:
        """The log of one of ``account_id``'s sessions (running or ended), or None.

        A running session's log is served from memory; an ended one from its file.
        Another account's session id gives None, as an unknown one does.
        """
        found = self.find_session(session_id)
        if found is not None:
            if found.match.account_id != account_id:
                return None
            return "\n".join(found.log_lines) + "\n"
        path = self._log_path(account_id, session_id)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return None

    def named_conference(self, account_id: int, name: str) -> Conference | None:
        """``account_id``'s running conference called ``name``, or None."""
        conf = self.conferences.get((int(account_id), name))
        return conf if conf is not None and conf.active else None

    def find_session(self, session_id: str) -> Session | None:
        """A running or recently ended session by id."""
        found = self.sessions.get(session_id)
        if found is None:
            found = next((s for s in self.recent if s.id == session_id), None)
        return found

    async def access_request(self, session_id: str, secret: str, method: str, path: str,
                             content: bytes, headers: dict[str, str]) -> AccessResponse:
        """A request to a session's access URL; 404 for unknown, ended or wrong-secret."""
        session = self.sessions.get(session_id)
        if session is None or session.ended or not hmac.compare_digest(
                session.secret.encode(), secret.encode()):
            return AccessResponse(404, b"session not found")
        return await session.http_request(method, path, content, headers)

    async def stop(self) -> None:
        """Terminate every session and wait for their CDRs; close the HTTP client."""
        sessions = list(self.sessions.values())
        for s in sessions:
            s.terminate()
        if sessions:
            await asyncio.gather(*(s.wait_ended(10) for s in sessions), return_exceptions=True)
        await self.http_client.aclose()

    # -- outbound calls ----------------------------------------------------------
    def dial(self, session: Session, uri: str, *, callerid: str, display_name: str,
             headers: dict[str, str] | None, auth: DigestCredentials | None) -> Call:
        """Create an outbound Call in ``session`` and start dialling it.

        Over a call limit (:mod:`gateway.runtime.limits`) the Call is returned all the
        same and fails on the next loop iteration with 403 "Call limit reached";
        nothing is sent.
        """
        if self.dialer is None:
            raise GatewayError("no SIP adapter is running", session_id=session.id)
        refused = self._call_limit(session)
        session.call_attempts += 1
        if refused is not None:
            stand_in = RefusedLeg(uri, callerid, headers)
            call = session.add_call(stand_in)
            session.refused_call_ids.add(call.id())
            session.log_line(f"call to {uri} refused (call {call.id()}): {refused}",
                             logging.WARNING)
            asyncio.get_running_loop().call_soon(session.run_in_context, stand_in.fail)
            return call
        leg = self.dialer.new_outbound_leg(uri, callerid=callerid, display_name=display_name,
                                           headers=headers, auth=auth)
        call = session.add_call(leg)
        session.log_line(f"dialling {uri} as {callerid} (call {call.id()})")
        session.spawn(leg.dial(), f"dial {call.id()}")
        return call

    def _call_limit(self, session: Session) -> str | None:
        """Why ``session`` may not place one more call now, or None."""
        if session.call_attempts >= self.max_call_attempts:
            return (f"Call limit reached: at most {self.max_call_attempts} call attempts per "
                    "session")
        unanswered = sum(1 for c in session.calls
                         if not c.incoming() and c.id() not in session.refused_call_ids
                         and c.state() in (CallState.PROGRESSING, CallState.ALERTING))
        if unanswered >= self.max_unanswered_calls:
            return (f"Call limit reached: at most {self.max_unanswered_calls} unanswered calls "
                    "at once per session")
        return None

    def trunk_uri_for(self, number: str) -> str:
        """SIP URI for ``number`` on the trunk: ``sip:NUMBER@trunk-host[:port][;params]``.

        Raises:
            GatewayError: ``VGW_SIP_TRUNK_URI`` is not set.
        """
        if not self.trunk_uri:
            raise GatewayError("call_pstn needs VGW_SIP_TRUNK_URI")
        raw = self.trunk_uri
        scheme, _, rest = raw.partition(":")
        if not rest:
            scheme, rest = "sip", raw
        hostpart = rest.split("@", 1)[-1]
        user = "".join(ch for ch in number if ch.isalnum() or ch in "+*#")
        return f"{scheme}:{user}@{hostpart}"

    def trunk_credentials(self) -> DigestCredentials | None:
        """Digest credentials for the trunk, when configured."""
        return self._trunk_auth
