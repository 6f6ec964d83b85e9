"""``Session``: one run of a rule's scenarios (ARCHITECTURE.md, "The model").

A session starts from an inbound call (``AppEvents.Started`` then
``AppEvents.CallAlerting``) or from StartScenarios (``AppEvents.Started``). Its
scenarios execute once, in order, in one shared namespace. It ends with
``VoxEngine.terminate()``, after ``idle_timeout`` seconds with no calls, or when
a handler raises (or holds the event loop longer than the handler watchdog allows):
then its timers stop, running HTTP requests finish, its calls are hung up,
``Terminating``/``Terminated`` fire and its CDR is written. Nothing a session does
reaches another session.

Scenario globals: ``VoxEngine``, ``AppEvents``, ``CallEvents``, ``CallState``,
``PlayerEvents``, ``ASREvents``, ``ConferenceEvents``, ``RecorderEvents``, ``Logger``,
``Net``, ``ApplicationStorage``, ``set_timeout``, ``set_interval``, ``clear_timeout``,
``clear_interval`` and the connector namespaces.

Phases (VoxEngine's rules): ``running``; ``ending`` once termination starts (timers are
cancelled, queued HTTP requests dropped, running ones awaited); ``terminating`` once
``AppEvents.Terminating`` fired (one more HTTP request is allowed, ApplicationStorage
works); ``terminated`` once ``AppEvents.Terminated`` fired (only ``Logger.write`` works:
everything else raises :class:`SessionEndedError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import secrets
import time
import traceback
import uuid
from collections.abc import Awaitable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError, ScenarioError
from gateway.runtime.app_storage import ApplicationStorage
from gateway.runtime.asr import ASREvents
from gateway.runtime.call import Call
from gateway.runtime.conference import ConferenceEvents
from gateway.runtime.constants import AppEvents, CallEvents, CallState
from gateway.runtime.context import current_session
from gateway.runtime.events import Event, EventTarget, call_handler
from gateway.runtime.leg import CallLeg
from gateway.runtime.loader import compile_scenario
from gateway.runtime.net import SessionNet
from gateway.runtime.player import PlayerEvents
from gateway.runtime.recorder import RecorderEvents
from gateway.runtime.records import AccessResponse, RuleMatch, SessionRecord
from gateway.runtime.timers import SessionTimers
from gateway.runtime.watchdog import get_watchdog

if TYPE_CHECKING:
    from gateway.runtime.manager import Runtime

log = logging.getLogger("gateway.session")


class SessionEndedError(GatewayError):
    """A scenario used the runtime after its session ended (VoxEngine's rules: after
    ``AppEvents.Terminated`` only ``Logger.write`` works)."""


class SessionLogger:
    """``Logger`` in scenario globals: ``Logger.write(text)`` appends to the session log."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def write(self, *parts: Any) -> None:
        """Append one line to the session log (also logged with the session id)."""
        self._session.log_line(" ".join(str(p) for p in parts))


class Session(EventTarget):
    """One session. Created and owned by :class:`gateway.runtime.manager.Runtime`.

    Attributes:
        id: session id (32 hex chars).
        secret: the access URL's secret (256 bits, URL-safe).
        match: the rule and scenarios this session runs.
        record: the session CDR, written when the session ends.
    """

    def __init__(self, runtime: Runtime, match: RuleMatch, custom_data: str | None,
                 initiator: str = "") -> None:
        self.id = uuid.uuid4().hex
        EventTarget.__init__(self, self)
        self.secret = secrets.token_urlsafe(32)
        self.runtime = runtime
        self.match = match
        self.custom_data = custom_data
        self.calls: list[Call] = []
        self.units: list[Any] = []
        self.log_lines: list[str] = []
        self.ended = False
        #: "running", "ending", "terminating" or "terminated" (see the module docstring).
        self.phase = "running"
        #: True once the Terminated handlers have run: later events reach no handler.
        self.closed = False
        #: Outbound call attempts so far (``call_sip``/``call_pstn``), for the call limit.
        self.call_attempts = 0
        #: Ids of calls a call limit refused (they never reached the network).
        self.refused_call_ids: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._no_calls = asyncio.Event()  # set while no call is active
        self._no_calls.set()
        self._terminate_task: asyncio.Task[None] | None = None
        self._done = asyncio.get_running_loop().create_future()
        self._failed = False
        self._t0 = time.monotonic()
        self.record = SessionRecord(
            session_id=self.id, account_id=match.account_id,
            application_id=match.application_id, application_name=match.application_name,
            rule_id=match.rule_id, rule_name=match.rule_name, start_date=datetime.now(UTC),
            custom_data=custom_data, initiator_address=initiator,
        )
        self.logger = SessionLogger(self)
        #: The account's secrets, name -> value (never logged).
        self.secrets: dict[str, str] = {}
        self.namespace: dict[str, Any] = {}
        self._ctx = contextvars.copy_context()
        self._ctx.run(current_session.set, self)
        self._watchdog = get_watchdog()
        self.timers = SessionTimers(self)
        self.net = SessionNet(self, runtime.http_client)
        self.storage = ApplicationStorage(self, runtime.app_storage_store)

    # -- identity ------------------------------------------------------------
    @property
    def access_url(self) -> str:
        """``media_session_access_url``: an HTTP request to it fires ``AppEvents.HttpRequest``."""
        return f"{self.runtime.http_base_url}/sessions/{self.id}/{self.secret}"

    @property
    def log_url(self) -> str:
        """Where the session log is downloaded (platform_api auth): ``<base>/logs/<id>``."""
        return f"{self.runtime.http_base_url}/logs/{self.id}"

    @property
    def secure_access_url(self) -> str:
        """``media_session_access_secure_url``: https exactly when the gateway's base URL is
        (``VGW_TLS_CERT``/``VGW_TLS_KEY``, or an https ``VGW_PUBLIC_URL`` behind a proxy);
        otherwise the same as :attr:`access_url`, since nothing would serve https."""
        return self.access_url

    def __repr__(self) -> str:
        return f"<Session {self.id} rule={self.match.rule_name}>"

    # -- logging -------------------------------------------------------------
    def log_line(self, text: str, level: int = logging.INFO) -> None:
        """Append ``text`` to this session's log and the process log (with the session id)."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        self.log_lines.append(f"{stamp} {text}")
        log.log(level, "[session %s] %s", self.id, text)

    def log_event(self, name: str, call_id: str | None = None, code: int | None = None) -> None:
        """Log one event line (name, call id, SIP code)."""
        extra = (f" call={call_id}" if call_id else "") + (f" code={code}" if code else "")
        self.log_line(f"event {name}{extra}", logging.DEBUG)

    # -- VoxEngine's lifetime rules ------------------------------------------------
    @property
    def terminating(self) -> bool:
        """True once termination has started (phase ``ending`` or later)."""
        return self.phase != "running"

    def ended_error(self, api: str, rule: str) -> SessionEndedError:
        """The error for ``api`` used against a lifetime ``rule``."""
        return SessionEndedError(f"{api}: {rule}", session_id=self.id)

    def check_alive(self, api: str) -> None:
        """Raise when ``AppEvents.Terminated`` has fired (only ``Logger.write`` works then).

        Raises:
            SessionEndedError: naming ``api`` and the rule.
        """
        if self.phase == "terminated":
            raise self.ended_error(api, "the session has ended (AppEvents.Terminated has "
                                   "fired); after Terminated only Logger.write works")

    # -- running scenario code ---------------------------------------------------------
    def guard(self, fn: Any, *args: Any) -> Any:
        """Call scenario code ``fn(*args)`` under the handler watchdog.

        Raises:
            HandlerTimeoutError: it held the event loop longer than the limit.
        """
        return self._watchdog.call(self, self.runtime.handler_time_limit, fn, *args)

    def guard_awaitable(self, awaitable: Any) -> Any:
        """``awaitable`` with each step of it under the watchdog (coroutines only)."""
        if inspect.iscoroutine(awaitable):
            return self._watchdog.guard_coroutine(self, self.runtime.handler_time_limit,
                                                  awaitable)
        return awaitable

    def run_handler(self, fn: Any, args: tuple[Any, ...], where: str) -> None:
        """Run scenario callback ``fn(*args)`` like an event handler (timers use it)."""
        self.run_in_context(call_handler, self, fn, args, where)

    # -- tasks -----------------------------------------------------------------
    def run_in_context(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` with this session as ``current_session``."""
        if current_session.get(None) is self:
            return fn(*args)
        return self._ctx.run(fn, *args)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by this session; a failure is logged, not raised."""

        async def guarded() -> Any:
            try:
                return await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log_line(f"{what} failed: {exc!r}", logging.WARNING)
                return None

        task = self.run_in_context(asyncio.ensure_future, guarded())
        self.track_task(task)
        return task

    def track_task(self, task: asyncio.Task[Any]) -> None:
        """Keep a reference to ``task`` until it finishes; cancelled when the session ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def handler_failed(self, exc: BaseException, where: str) -> None:
        """A scenario handler raised: log it with the session id and end this session."""
        self._failed = True
        log.error("[session %s] handler for %s raised", self.id, where, exc_info=exc)
        self.log_line(f"error in {where}: {type(exc).__name__}: {exc}", logging.ERROR)
        for line in traceback.format_exception(exc)[1:]:  # the scenario's frames
            for part in line.rstrip().splitlines():
                self.log_lines.append(f"    {part}")
        self.terminate()

    def register_unit(self, unit: Any) -> None:
        """Close ``unit`` (a player, a Voice AI client ...) when the session ends."""
        self.units.append(unit)

    # -- scenarios -----------------------------------------------------------------
    def load(self, extra_globals: dict[str, Any]) -> None:
        """Execute the rule's scenarios in order in one namespace.

        Raises:
            ScenarioError: a scenario failed to compile or raised at top level.
        """
        from gateway.runtime.voxengine import VoxEngineFacade

        self.namespace.update(extra_globals)
        timers = self.timers
        self.namespace.update({
            "__name__": f"scenario_{self.id}",
            "VoxEngine": VoxEngineFacade(self),
            "AppEvents": AppEvents,
            "CallEvents": CallEvents,
            "CallState": CallState,
            "PlayerEvents": PlayerEvents,
            "ASREvents": ASREvents,
            "ConferenceEvents": ConferenceEvents,
            "RecorderEvents": RecorderEvents,
            "Logger": self.logger,
            "Net": self.net,
            "ApplicationStorage": self.storage,
            "set_timeout": timers.set_timeout,
            "set_interval": timers.set_interval,
            "clear_timeout": timers.clear_timeout,
            "clear_interval": timers.clear_interval,
        })
        for src in self.match.scenarios:
            code = compile_scenario(src.script, src.name)
            try:
                self.run_in_context(self.guard, exec, code, self.namespace)
            except Exception as exc:
                raise ScenarioError(f"scenario {src.name!r} raised at load: {exc!r}",
                                    session_id=self.id) from exc

    def start(self, call: Call | None = None) -> None:
        """Fire ``AppEvents.Started`` (then ``CallAlerting`` for an inbound call)."""
        self.log_line(f"session started: rule {self.match.rule_name!r}, "
                      f"application {self.match.application_name!r}")
        self.log_event(AppEvents.Started)
        self.run_in_context(self.dispatch, Event(
            AppEvents.Started, accessURL=self.access_url, accessSecureURL=self.secure_access_url,
            access_url=self.access_url, access_secure_url=self.secure_access_url,
            session_id=self.id, sessionID=self.id, custom_data=self.custom_data,
            log_url=self.log_url, logURL=self.log_url,
            application_name=self.match.application_name, rule_name=self.match.rule_name,
        ))
        if call is not None and not self.ended:
            self.log_event(AppEvents.CallAlerting, call.id())
            self.run_in_context(self.dispatch, Event(
                AppEvents.CallAlerting, call=call, callerid=call.callerid(),
                destination=call.number(), display_name=call.display_name(),
                headers=call.headers(), session_id=self.id,
            ))
        self._arm_idle()

    # -- calls ------------------------------------------------------------------
    def add_call(self, leg: CallLeg) -> Call:
        """Wrap ``leg`` in a :class:`Call` that belongs to this session."""
        call = self.run_in_context(Call, self, leg)
        self.calls.append(call)
        self._no_calls.clear()
        self._disarm_idle()
        return call

    def call_connected(self, call: Call) -> None:
        self.log_line(f"call {call.id()} connected")

    def call_ended(self, call: Call) -> None:
        """A call reached TERMINATED; arm the idle timer when none is left."""
        r = call.cdr
        self.log_line(f"call {call.id()} ended: {r.finish_reason} code={r.result_code} "
                      f"duration={r.duration}s")
        if not self.active_calls():
            self._no_calls.set()
        self._arm_idle()

    def active_calls(self) -> list[Call]:
        return [c for c in self.calls if c.state() != CallState.TERMINATED]

    def _arm_idle(self) -> None:
        if self.ended or self.active_calls() or self._idle_handle is not None:
            return
        loop = asyncio.get_running_loop()
        self._idle_handle = loop.call_later(self.runtime.idle_timeout, self._idle_expired)

    def _disarm_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _idle_expired(self) -> None:
        self._idle_handle = None
        if not self.active_calls():
            self.log_line(f"no calls for {self.runtime.idle_timeout:g} s: ending session")
            self.terminate()

    # -- HTTP access URL ----------------------------------------------------------
    async def http_request(self, method: str, path: str, content: bytes,
                           headers: dict[str, str]) -> AccessResponse:
        """Fire ``AppEvents.HttpRequest``; the first handler's return value is the reply.

        ``str``/``bytes`` are sent as-is, ``dict``/``list`` as JSON, ``None`` gives 204.
        A handler that takes longer than ``runtime.http_handler_timeout`` (5 s) gives 504.
        """
        import json

        ev = Event(AppEvents.HttpRequest, method=method, path=path,
                   content=content.decode("utf-8", "replace"), headers=headers, session_id=self.id)
        self.log_event(AppEvents.HttpRequest)
        result: Any = None
        for handler in list(self._listeners.get(AppEvents.HttpRequest, ())):
            try:
                out = self.run_in_context(self.guard, handler, ev)
                if isinstance(out, Awaitable):
                    out = await asyncio.wait_for(
                        self.run_in_context(asyncio.ensure_future, self.guard_awaitable(out)),
                        self.runtime.http_handler_timeout)
            except TimeoutError:
                self.log_line("HttpRequest handler timed out", logging.WARNING)
                return AccessResponse(504, b"handler timed out")
            except Exception as exc:
                self.handler_failed(exc, AppEvents.HttpRequest)
                return AccessResponse(500, b"scenario error")
            if result is None:
                result = out
        if result is None:
            return AccessResponse(204, b"")
        if isinstance(result, bytes):
            return AccessResponse(200, result, "application/octet-stream")
        if isinstance(result, str):
            return AccessResponse(200, result.encode())
        return AccessResponse(200, json.dumps(result, default=str).encode(), "application/json")

    # -- ending ---------------------------------------------------------------------
    def terminate(self) -> None:
        """End this session (idempotent): hang up calls, close units, write the CDR."""
        if self._terminate_task is None and not self.ended:
            self._terminate_task = asyncio.get_running_loop().create_task(self._terminate())

    async def wait_ended(self, timeout: float | None = None) -> None:
        """Wait until the session has fully ended (CDR written)."""
        await asyncio.wait_for(asyncio.shield(self._done), timeout)

    async def _terminate(self) -> None:
        self._disarm_idle()
        self.phase = "ending"
        try:
            self.timers.cancel_all()  # VoxEngine: no timers once Terminating has fired
            drain = self.runtime.net_drain_timeout
            await self.net.before_terminating(drain)  # queued dropped, running awaited
            self.phase = "terminating"
            self.log_event(AppEvents.Terminating)
            before = set(self._tasks)
            self.run_in_context(self.dispatch, Event(AppEvents.Terminating, session_id=self.id))
            on_terminating = self._tasks - before  # async Terminating handlers
            for call in self.active_calls():
                call.hangup()
            await self._await_calls_ended(5.0)
            for unit in self.units:
                close = getattr(unit, "close", None)
                if close is not None:
                    try:
                        res = close()
                        if isinstance(res, Awaitable):
                            await asyncio.wait_for(res, 5.0)
                    except Exception as exc:
                        self.log_line(f"closing {unit!r} failed: {exc!r}", logging.WARNING)
            if on_terminating:  # let async Terminating handlers finish (their one request)
                await asyncio.wait(on_terminating, timeout=drain)
            await self.net.wait_idle(drain)  # the one request allowed after Terminating
            self.timers.cancel_all()
            self.ended = True
            self.phase = "terminated"
            self.log_event(AppEvents.Terminated)
            self.run_in_context(self.dispatch, Event(AppEvents.Terminated, session_id=self.id))
            self.closed = True  # no scenario code runs after the Terminated handlers
            current = asyncio.current_task()
            for task in list(self._tasks):
                if task is not current:
                    task.cancel()
            rec = self.record
            rec.end_date = datetime.now(UTC)
            rec.duration = round(time.monotonic() - self._t0)
            rec.finish_reason = "error" if self._failed else "normal"
            rec.calls = [c.cdr for c in self.calls]
            self.log_line(f"session ended: {rec.finish_reason}")
        finally:
            self.ended = True
            self.phase = "terminated"
            self.closed = True
            self.timers.cancel_all()
            try:
                await self.runtime.session_ended(self)
            finally:
                if not self._done.done():
                    self._done.set_result(None)

    async def _await_calls_ended(self, timeout: float) -> None:
        if self.active_calls():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_calls.wait(), timeout)
        for call in self.active_calls():  # the leg never confirmed: close the record anyway
            call._end(0, "error")
