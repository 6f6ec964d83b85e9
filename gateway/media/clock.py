"""The process-wide 20 ms media clock (RFC 3551 §4.5 frame interval for telephony audio).

One asyncio timer drives every call leg's media on an event loop, instead of one task
(and one timer) per leg. Ticks are scheduled at absolute times ``t0 + n * 20 ms`` with
``loop.call_at``, so the error of one wake-up never accumulates into drift. When the loop
was blocked for several periods the missed ticks are run at once (catch-up, at most
``max_catchup`` per wake-up) and the rest are skipped, so a stalled loop does not turn
into an endless burst.

Callbacks are plain functions called on the event loop; keep them short (one frame of
work). An exception in one is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Callable

from gateway.media.format import FRAME_MS

__all__ = ["MediaClock", "get_media_clock"]

log = logging.getLogger(__name__)

TickCallback = Callable[[], None]


class MediaClock:
    """A shared periodic ticker on one event loop.

    Args:
        loop: the event loop to tick on (default: the running loop).
        period_ms: tick period in milliseconds (20).
        max_catchup: most ticks run back-to-back after the loop was late.

    The timer runs only while there are subscribers: it starts on the first
    :meth:`subscribe` and stops after the last :meth:`unsubscribe`.

    Attributes:
        ticks: ticks run since the clock was created.
        skipped: ticks dropped because the loop was late by more than ``max_catchup``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 period_ms: int = FRAME_MS, max_catchup: int = 5) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.period = period_ms / 1000.0
        self.max_catchup = max(1, max_catchup)
        self._subs: dict[int, TickCallback] = {}
        self._snapshot: tuple[tuple[int, TickCallback], ...] = ()
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._n = 0
        self.ticks = 0
        self.skipped = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop this clock ticks on."""
        return self._loop

    @property
    def running(self) -> bool:
        """True while the timer is armed (there are subscribers)."""
        return self._timer is not None

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, callback: TickCallback) -> int:
        """Call ``callback()`` on every tick, from the next one on.

        Returns:
            A handle for :meth:`unsubscribe`.
        """
        handle = next(self._ids)
        self._subs[handle] = callback
        self._snapshot = tuple(self._subs.items())
        if self._timer is None:
            self._t0 = self._loop.time()
            self._n = 1
            self._timer = self._loop.call_at(self._t0 + self.period, self._on_timer)
        return handle

    def unsubscribe(self, handle: int) -> None:
        """Stop calling the callback of ``handle``; unknown handles are ignored.

        Safe to call from inside a tick callback: the callback is not called again.
        """
        if self._subs.pop(handle, None) is None:
            return
        self._snapshot = tuple(self._subs.items())
        if not self._subs and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        now = self._loop.time()
        # Ticks due: every t0 + k*period <= now with k >= n (at least the one that fired).
        due = max(1, int((now - self._t0) / self.period) - self._n + 1)
        runs = min(due, self.max_catchup)
        for _ in range(runs):
            self._tick()
        if due > runs:
            self.skipped += due - runs
        self._n += due
        if self._timer is not None:  # the last subscriber may have left during the tick
            self._timer = self._loop.call_at(self._t0 + self._n * self.period, self._on_timer)

    def _tick(self) -> None:
        self.ticks += 1
        subs = self._subs
        for handle, callback in self._snapshot:
            if handle not in subs:
                continue
            try:
                callback()
            except Exception:
                log.exception("media clock callback %r failed", callback)


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock] = (
    weakref.WeakKeyDictionary()
)
_clocks_strong: dict[asyncio.AbstractEventLoop, MediaClock] = {}


def get_media_clock() -> MediaClock:
    """The :class:`MediaClock` of the running event loop (one per loop, created on demand).

    Raises:
        RuntimeError: no event loop is running.
    """
    loop = asyncio.get_running_loop()
    try:
        clock = _clocks.get(loop)
    except TypeError:  # a loop type without weakref support
        for old in [lp for lp in _clocks_strong if lp.is_closed()]:
            del _clocks_strong[old]
        clock = _clocks_strong.get(loop)
        if clock is None:
            clock = _clocks_strong[loop] = MediaClock(loop)
        return clock
    if clock is None:
        clock = _clocks[loop] = MediaClock(loop)
    return clock
