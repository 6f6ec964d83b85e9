"""The handler watchdog: scenario code may hold the event loop for at most ~1 s.

VoxEngine limits one callback's execution time to 1 second ("Limits and restrictions":
"Callback execution time is limited to 1 second"). Here every session shares one event
loop, so a handler that spins stalls every other session's audio; the watchdog bounds
that stall.

How it works:

* Every entry into scenario code (a sync handler, one step of an async handler, a timer
  callback, the scenario's top level) is bracketed by :meth:`Watchdog.call`: it records
  (thread, start time, limit) in a slot and removes it on the way out. Nested entries
  (a handler that synchronously triggers another event) keep the outer slot.
* One daemon thread per process checks the slots every ``limit / 10`` (at most 100 ms)
  while brackets are in use (after 5 s without any it sleeps until the next one). A slot
  older than its limit gets :class:`HandlerInterrupt` raised inside the loop thread with
  ``PyThreadState_SetAsyncExc``; it fires at the next bytecode boundary, inside the
  scenario code, and the bracket turns it into :class:`HandlerTimeoutError` (an ordinary
  ``Exception``) for the session's ``handler_failed`` path. A scenario that swallows
  the interrupt and keeps spinning gets it again every ``limit``; one that swallows it
  and returns still fails.
* The check-and-raise happens under a lock that the bracket also takes when it leaves
  (only the bracket removes its slot), and the bracket runs a checkpoint (a Python call)
  after leaving, so an interrupt can only ever fire inside the bracket, never in gateway
  code after it.

Cost: about 2.5 us per handler call on the development VM (a lock on the way out, two
dict operations, a clock read); nothing in the media path (frames never pass through a
bracket). Limits: code blocked inside one C call (``time.sleep``, blocking socket I/O) is
interrupted only when that call returns; coroutines a scenario starts itself with
``asyncio.create_task`` are not bracketed; a scenario that catches ``BaseException``
around its busy loop can keep swallowing the interrupt.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

from gateway.errors import GatewayError

T = TypeVar("T")

#: Default limit, seconds (VoxEngine's "Callback execution time is limited to 1 second").
DEFAULT_HANDLER_TIME_LIMIT = 1.0
#: The watchdog thread stops polling after this long without any bracket (seconds).
_IDLE_AFTER = 5.0


class HandlerInterrupt(BaseException):
    """Raised asynchronously inside scenario code that held the loop too long.

    A ``BaseException`` so that ``except Exception`` in the scenario does not swallow it.
    """


class HandlerTimeoutError(GatewayError):
    """A handler kept the event loop busy longer than the limit and was interrupted."""


class _Slot:
    __slots__ = ("fired", "fired_at", "limit", "owner", "since")

    def __init__(self, owner: Any, since: float, limit: float) -> None:
        self.owner = owner
        self.since = since
        self.limit = limit
        self.fired = 0
        self.fired_at = 0.0


def _checkpoint() -> None:
    """An empty Python call: a pending asynchronous exception is raised on entry."""


class Watchdog:
    """Interrupts scenario code that holds its thread longer than a limit.

    One instance serves the whole process (:func:`get_watchdog`); each bracket carries its
    own limit, so runtimes with different limits share it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._slots: dict[int, _Slot] = {}
        self._thread: threading.Thread | None = None
        self._sleeping = False
        #: How many interrupts were raised since the process started (for tests, metrics).
        self.interrupts = 0

    # -- the bracket (loop thread) ------------------------------------------------
    def call(self, owner: Any, limit: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)``; interrupt it when it runs longer than ``limit`` seconds.

        Args:
            owner: who runs the code (the session); carried in the error message.
            limit: seconds; 0 or less runs ``fn`` unguarded.

        Raises:
            HandlerTimeoutError: ``fn`` was interrupted (or swallowed the interrupt).
            Whatever ``fn`` raises otherwise.
        """
        tid = threading.get_ident()
        if limit <= 0 or tid in self._slots:  # off, or nested inside this thread's bracket
            return fn(*args)
        slot = _Slot(owner, time.monotonic(), limit)
        self._slots[tid] = slot  # only this thread adds or removes its own slot
        if self._sleeping or self._thread is None:
            self._wake_thread()
        try:
            try:
                result = fn(*args)
            finally:
                # No call between taking the lock and deleting the slot: a pending
                # interrupt can only fire at a call boundary, and it must not skip this.
                with self._lock:
                    del self._slots[tid]
                _checkpoint()  # an interrupt raised before the slot went fires here
        except HandlerInterrupt as exc:
            raise self._timeout_error(owner, limit) from exc
        if slot.fired:
            raise self._timeout_error(owner, limit)
        return result

    def guard_coroutine(self, owner: Any, limit: float,
                        coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """``coro`` with each step (each ``send``/``throw``) run through :meth:`call`."""
        if limit <= 0:
            return coro
        return _GuardedCoroutine(self, owner, limit, coro)

    @staticmethod
    def _timeout_error(owner: Any, limit: float) -> HandlerTimeoutError:
        return HandlerTimeoutError(
            f"handler kept the event loop busy for more than {limit:g} s and was interrupted "
            f"(limit: VGW_HANDLER_TIME_LIMIT, VoxEngine's 1 s callback limit)",
            session_id=getattr(owner, "id", None))

    # -- the thread -----------------------------------------------------------------
    def _wake_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="vgw-handler-watchdog")
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._lock:
                now = time.monotonic()
                slots = list(self._slots.items())  # atomic copy: brackets enter lock-free
                if slots:
                    idle_since = now
                elif now - idle_since > _IDLE_AFTER:
                    # Idle: sleep until a bracket wakes us; the timeout bounds the race
                    # with a bracket that entered just before we started sleeping.
                    self._sleeping = True
                    self._wake.wait(_IDLE_AFTER)
                    self._sleeping = False
                    continue
                poll = min((s.limit for _, s in slots), default=1.0) / 10
                self._check(slots, now)
            time.sleep(min(max(poll, 0.005), 0.1))

    def _check(self, slots: list[tuple[int, _Slot]], now: float) -> None:
        """Interrupt overdue slots. Called with the lock held: no bracket can leave, so a
        slot in ``slots`` is still its thread's current one."""
        for tid, slot in slots:
            started = slot.fired_at if slot.fired else slot.since
            if now - started < slot.limit:
                continue
            slot.fired += 1
            slot.fired_at = now
            self.interrupts += 1
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid),
                                                       ctypes.py_object(HandlerInterrupt))


class _GuardedCoroutine:
    """Awaitable wrapper: every step of the wrapped coroutine runs in a bracket."""

    __slots__ = ("_coro", "_limit", "_owner", "_wd")

    def __init__(self, wd: Watchdog, owner: Any, limit: float,
                 coro: Coroutine[Any, Any, Any]) -> None:
        self._wd = wd
        self._owner = owner
        self._limit = limit
        self._coro = coro

    def __await__(self) -> Generator[Any, Any, Any]:
        return self  # type: ignore[return-value]

    def __iter__(self) -> _GuardedCoroutine:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        return self._wd.call(self._owner, self._limit, self._coro.send, value)

    def throw(self, *exc: Any) -> Any:
        return self._wd.call(self._owner, self._limit, self._coro.throw, *exc)

    def close(self) -> None:
        self._coro.close()


_watchdog: Watchdog | None = None
_watchdog_lock = threading.Lock()


def get_watchdog() -> Watchdog:
    """The process's watchdog (created on first use; its thread starts on first bracket)."""
    global _watchdog
    if _watchdog is None:
        with _watchdog_lock:
            if _watchdog is None:
                _watchdog = Watchdog()
    return _watchdog
