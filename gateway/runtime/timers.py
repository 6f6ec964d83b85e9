"""Scenario timers: ``set_timeout``, ``set_interval``, ``clear_timeout``, ``clear_interval``.

VoxEngine scenarios have JavaScript's ``setTimeout``/``setInterval``/``clearTimeout``/
``clearInterval``; here they are scenario globals in snake_case with the delay in
milliseconds, as in JavaScript. VoxEngine's limits apply ("Limits and restrictions"):
at most 100 active timers per session (a one-shot timer is active until it fires or is
cleared, an interval until it is cleared), and timers are not available once
``AppEvents.Terminating`` has fired: pending ones are cancelled and new ones are refused.

A callback may be sync or async; it runs like an event handler (with the handler
watchdog), and an exception in it ends the session through ``handler_failed``.
Intervals are scheduled at absolute times (``start + n * period``), so they do not drift.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.errors import LimitExceeded

if TYPE_CHECKING:
    from gateway.runtime.session import Session

#: VoxEngine's limit on active timers per session.
MAX_ACTIVE_TIMERS = 100
#: Shortest interval period, ms (a 0 ms interval would spin the event loop).
MIN_INTERVAL_MS = 10.0


@dataclass(slots=True, eq=False)
class _Timer:
    id: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    period: float | None  # seconds; None for a one-shot timer
    due: float
    handle: asyncio.TimerHandle | None = None


class SessionTimers:
    """The timers of one session; its methods are the scenario globals.

    Args:
        session: the owning session.
        max_active: most timers active at once (VoxEngine: 100).
    """

    def __init__(self, session: Session, max_active: int = MAX_ACTIVE_TIMERS) -> None:
        self._session = session
        self._max = max_active
        self._timers: dict[int, _Timer] = {}
        self._ids = itertools.count(1)

    @property
    def active(self) -> int:
        """How many timers are active now."""
        return len(self._timers)

    def set_timeout(self, fn: Callable[..., Any], ms: float = 0, *args: Any) -> int:
        """Call ``fn(*args)`` once after ``ms`` milliseconds; returns the timer id.

        Raises:
            TypeError: ``fn`` is not callable or ``ms`` is not a number.
            LimitExceeded: 100 timers are active already.
            SessionEndedError: ``AppEvents.Terminating`` has fired.
        """
        return self._add("set_timeout", fn, ms, args, periodic=False)

    def set_interval(self, fn: Callable[..., Any], ms: float, *args: Any) -> int:
        """Call ``fn(*args)`` every ``ms`` milliseconds (at least 10) until cleared.

        Raises:
            TypeError, LimitExceeded, SessionEndedError: as :meth:`set_timeout`.
        """
        return self._add("set_interval", fn, ms, args, periodic=True)

    def clear_timeout(self, timer_id: int | None) -> None:
        """Cancel a timer; unknown or already finished ids (and None) are ignored."""
        self._session.check_alive("clear_timeout")
        self._cancel(timer_id)

    def clear_interval(self, timer_id: int | None) -> None:
        """Cancel an interval; unknown ids (and None) are ignored."""
        self._session.check_alive("clear_interval")
        self._cancel(timer_id)

    def cancel_all(self) -> None:
        """Cancel every timer (the session is terminating)."""
        for timer in self._timers.values():
            if timer.handle is not None:
                timer.handle.cancel()
        self._timers.clear()

    # -- internals ------------------------------------------------------------------
    def _add(self, api: str, fn: Callable[..., Any], ms: float, args: tuple[Any, ...],
             periodic: bool) -> int:
        session = self._session
        session.check_alive(api)
        if session.terminating:
            raise session.ended_error(api, "timers are not available once "
                                      "AppEvents.Terminating has fired")
        if not callable(fn):
            raise TypeError(f"{api}: the callback must be callable, got {type(fn).__name__}")
        if isinstance(ms, bool) or not isinstance(ms, int | float):
            raise TypeError(f"{api}: the delay must be a number of milliseconds")
        if len(self._timers) >= self._max:
            raise LimitExceeded(f"{api}: at most {self._max} timers may be active in a "
                                f"session (VoxEngine's limit)", session_id=session.id)
        delay = max(float(ms), MIN_INTERVAL_MS if periodic else 0.0) / 1000.0
        loop = asyncio.get_running_loop()
        timer = _Timer(next(self._ids), fn, args, delay if periodic else None,
                       loop.time() + delay)
        self._timers[timer.id] = timer
        timer.handle = loop.call_at(timer.due, self._fire, timer)
        return timer.id

    def _cancel(self, timer_id: int | None) -> None:
        if not isinstance(timer_id, int):
            return
        timer = self._timers.pop(timer_id, None)
        if timer is not None and timer.handle is not None:
            timer.handle.cancel()

    def _fire(self, timer: _Timer) -> None:
        if self._timers.get(timer.id) is not timer:
            return
        if timer.period is None:
            del self._timers[timer.id]
            timer.handle = None
        else:
            loop = asyncio.get_running_loop()
            timer.due += timer.period
            now = loop.time()
            if timer.due < now:  # the loop was late by more than a period: skip, no burst
                timer.due += ((now - timer.due) // timer.period + 1) * timer.period
            timer.handle = loop.call_at(timer.due, self._fire, timer)
        where = "set_interval callback" if timer.period is not None else "set_timeout callback"
        self._session.run_handler(timer.fn, timer.args, where)
