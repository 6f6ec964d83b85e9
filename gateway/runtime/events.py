"""Events and event targets, as in VoxEngine (``addEventListener`` in snake_case).

A handler may be a plain function or a coroutine function. Handlers run on the
event loop in registration order; a coroutine handler runs as a task owned by the
session. An exception in any handler is reported to the owning session, which
logs it with the session id and ends that session only. Handlers run under the
session's handler watchdog (a handler may hold the event loop for ~1 s at most).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, Protocol

from gateway.runtime.context import current_session

log = logging.getLogger(__name__)

Handler = Callable[["Event"], Any]


class Event:
    """One event: its type plus payload attributes (``event.call``, ``event.data`` ...).

    ``event.event_name`` is the type (``CallEvents.Connected``); ``event.name`` is the
    same unless the payload has its own ``name`` (a tool call's function name).
    Attribute access and ``event["key"]`` both work; unknown attributes are None
    so scenario code can probe optional fields.
    """

    def __init__(self, event_name: str, /, **payload: Any) -> None:
        self.event_name = event_name
        self.name = event_name
        self.__dict__.update(payload)

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        return None

    def __getitem__(self, item: str) -> Any:
        return self.__dict__.get(item)

    def to_dict(self) -> dict[str, Any]:
        """Payload as a plain dict (for logs)."""
        return dict(self.__dict__)

    def __repr__(self) -> str:
        keys = ", ".join(k for k in self.__dict__ if k not in ("name", "event_name"))
        return f"Event({self.event_name}: {keys})"


class ErrorSink(Protocol):
    """Who hears about a handler that raised (the session).

    A session also offers ``guard(fn, *args)`` and ``guard_awaitable(aw)`` (the handler
    watchdog, :mod:`gateway.runtime.watchdog`); other owners may leave them out.
    """

    id: str

    def handler_failed(self, exc: BaseException, where: str) -> None: ...

    def track_task(self, task: asyncio.Task[Any]) -> None: ...


def call_handler(owner: ErrorSink | None, handler: Callable[..., Any], args: tuple[Any, ...],
                 where: str) -> None:
    """Run scenario code ``handler(*args)`` on behalf of ``owner``.

    The call (and each step of a coroutine it returns) runs under the owner's handler
    watchdog when it has one. A coroutine result runs as a task tracked by the owner.
    An exception never propagates: it goes to ``owner.handler_failed`` (logged when
    there is no owner). Nothing runs once the owner is ``closed`` (a session after its
    ``AppEvents.Terminated`` handlers: VoxEngine runs no scenario code after that).
    """
    if getattr(owner, "closed", False):
        return
    guard = getattr(owner, "guard", None)
    try:
        result = guard(handler, *args) if guard is not None else handler(*args)
    except Exception as exc:
        _report(owner, exc, where)
        return
    if inspect.isawaitable(result):
        if guard is not None:
            result = owner.guard_awaitable(result)  # type: ignore[union-attr]
        task = asyncio.ensure_future(_await_handler(owner, result, where))
        if owner is not None:
            owner.track_task(task)


async def _await_handler(owner: ErrorSink | None, awaitable: Any, where: str) -> Any:
    try:
        return await awaitable
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _report(owner, exc, where)
        return None


def _report(owner: ErrorSink | None, exc: BaseException, where: str) -> None:
    if owner is not None:
        owner.handler_failed(exc, where)
    else:
        log.error("event handler for %s raised", where, exc_info=exc)


class EventTarget:
    """Something scenario code can subscribe to (VoxEngine, a Call, a Voice AI client).

    Args:
        owner: the session that hears about failing handlers; defaults to the
            session of the scenario code currently running (a context variable).
    """

    def __init__(self, owner: ErrorSink | None = None) -> None:
        self._listeners: dict[str, list[Handler]] = {}
        self._owner: ErrorSink | None = owner if owner is not None else current_session.get(None)

    def add_event_listener(self, event: str, handler: Handler) -> None:
        """Subscribe ``handler`` to ``event`` (an ``*Events.X`` constant).

        Raises:
            TypeError: ``handler`` is not callable or ``event`` is not a string.
        """
        if not callable(handler):
            raise TypeError("event handler must be callable")
        if not isinstance(event, str):
            raise TypeError("event must be an event name such as CallEvents.Connected")
        self._listeners.setdefault(event, []).append(handler)

    def remove_event_listener(self, event: str, handler: Handler | None = None) -> None:
        """Unsubscribe ``handler``, or every handler of ``event`` when None."""
        if handler is None:
            self._listeners.pop(event, None)
            return
        handlers = self._listeners.get(event)
        if handlers and handler in handlers:
            handlers.remove(handler)

    def has_listeners(self, event: str) -> bool:
        return bool(self._listeners.get(event))

    def dispatch(self, event: str | Event, **payload: Any) -> Event:
        """Fire ``event`` to every handler; returns the event object.

        Sync handlers run now; coroutine handlers are scheduled as session tasks.
        Exceptions never propagate to the caller: they go to the owning session.
        """
        ev = event if isinstance(event, Event) else Event(event, **payload)
        handlers = self._listeners.get(ev.event_name)
        if not handlers:
            return ev
        run = getattr(self._owner, "run_in_context", None)
        for handler in list(handlers):
            if run is not None:
                run(self._call, handler, ev)
            else:
                self._call(handler, ev)
        return ev

    def _call(self, handler: Handler, ev: Event) -> None:
        call_handler(self._owner, handler, (ev,), ev.event_name)

    async def _await(self, awaitable: Any, where: str) -> Any:
        return await _await_handler(self._owner, awaitable, where)

    def _fail(self, exc: BaseException, where: str) -> None:
        _report(self._owner, exc, where)
