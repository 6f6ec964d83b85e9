"""MediaClock tests: shared singleton, absolute scheduling, catch-up cap, isolation."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.media.clock import MediaClock, get_media_clock


async def test_singleton_per_loop() -> None:
    assert get_media_clock() is get_media_clock()
    assert get_media_clock().loop is asyncio.get_running_loop()


async def test_starts_on_first_subscriber_and_stops_on_last() -> None:
    clock = MediaClock()
    assert not clock.running
    ticks: list[int] = []
    h = clock.subscribe(lambda: ticks.append(1))
    assert clock.running
    while len(ticks) < 3:
        await asyncio.sleep(0.005)
    clock.unsubscribe(h)
    assert not clock.running
    n = len(ticks)
    await asyncio.sleep(0.05)
    assert len(ticks) == n
    clock.unsubscribe(h)  # unknown handle: ignored


async def test_ticks_are_scheduled_at_absolute_times() -> None:
    clock = MediaClock()
    loop = asyncio.get_running_loop()
    times: list[float] = []
    h = clock.subscribe(lambda: times.append(loop.time()))
    while len(times) < 5:
        await asyncio.sleep(0.01)
    clock.unsubscribe(h)
    # each tick fires at or after t0 + n * period (never before its slot)
    for n, t in enumerate(times, start=1):
        assert t >= clock._t0 + n * clock.period - 0.001


async def test_catch_up_is_capped_after_stall() -> None:
    clock = MediaClock(max_catchup=5)
    ticks: list[int] = []
    h = clock.subscribe(lambda: ticks.append(clock.ticks))
    while not ticks:
        await asyncio.sleep(0.001)
    start = len(ticks)
    time.sleep(0.2)  # noqa: ASYNC251 -- block the loop for ~10 periods on purpose
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    burst = len(ticks) - start
    clock.unsubscribe(h)
    assert 1 <= burst <= 5
    assert clock.skipped >= 1


async def test_exception_in_one_callback_does_not_stop_others(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = MediaClock()
    good: list[int] = []

    def bad() -> None:
        raise RuntimeError("boom")

    h1 = clock.subscribe(bad)
    h2 = clock.subscribe(lambda: good.append(1))
    while len(good) < 2:
        await asyncio.sleep(0.005)
    clock.unsubscribe(h1)
    clock.unsubscribe(h2)
    assert "boom" in caplog.text


async def test_unsubscribe_during_tick() -> None:
    clock = MediaClock()
    calls: list[str] = []
    handles: dict[str, int] = {}

    def first() -> None:
        calls.append("a")
        clock.unsubscribe(handles["b"])

    handles["a"] = clock.subscribe(first)
    handles["b"] = clock.subscribe(lambda: calls.append("b"))
    while len(calls) < 2:
        await asyncio.sleep(0.005)
    clock.unsubscribe(handles["a"])
    assert "b" not in calls
