"""Scenario runtime parity, no sockets: timers, lifetime rules (Terminating/Terminated),
call limits, the handler watchdog."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.errors import LimitExceeded
from gateway.runtime.limits import CALL_LIMIT_REASON
from gateway.runtime.manager import Runtime
from gateway.runtime.records import RuleMatch, ScenarioSource
from gateway.runtime.session import SessionEndedError
from gateway.runtime.watchdog import HandlerTimeoutError, Watchdog, get_watchdog
from tests.fakes.fake_leg import FakeLeg
from tests.fakes.memory_store import MemoryStore

#: Short watchdog limit for these tests (seconds).
LIMIT = 0.3


def make_runtime(*scripts: str, **kw) -> tuple[Runtime, MemoryStore, RuleMatch]:
    store = MemoryStore()
    match = RuleMatch(1, 1, "app", 1, "rule",
                      [ScenarioSource(i, f"s{i}", s) for i, s in enumerate(scripts)])
    kw.setdefault("handler_time_limit", LIMIT)
    return Runtime(store, "http://127.0.0.1:8080", **kw), store, match


async def until(cond, what: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


class FakeDialer:
    def __init__(self) -> None:
        self.legs: list[FakeLeg] = []

    def new_outbound_leg(self, uri, *, callerid, display_name="", headers=None, auth=None):
        leg = FakeLeg(incoming=False, number=uri, callerid=callerid, fmt=None)
        self.legs.append(leg)
        return leg


# -- timers --------------------------------------------------------------------------------

TIMERS = """
import asyncio
fired = []
def on_started(e):
    fired.append(("started",))
    set_timeout(lambda a, b: fired.append(("timeout", a, b)), 10, 1, 2)
    dead = set_timeout(lambda: fired.append("never"), 20)
    clear_timeout(dead)
    clear_timeout(12345)   # unknown ids are ignored
    clear_timeout(None)
    global iv
    iv = set_interval(tick, 10)
    async def later():
        await asyncio.sleep(0)
        fired.append(("async",))
    set_timeout(later, 5)
ticks = []
def tick():
    ticks.append(1)
    if len(ticks) == 3:
        clear_interval(iv)
        fired.append(("cleared",))
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def test_set_timeout_set_interval_and_clear():
    rt, _, match = make_runtime(TIMERS)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    ns = s.namespace
    await until(lambda: ("cleared",) in ns["fired"] and ("timeout", 1, 2) in ns["fired"]
                and ("async",) in ns["fired"], "timers to fire")
    assert "never" not in ns["fired"]
    assert ns["ticks"] == [1, 1, 1]
    assert s.timers.active == 0
    await rt.stop()


async def test_at_most_100_active_timers_each_error_clear():
    script = """
ids = []
for _ in range(100):
    ids.append(set_timeout(lambda: None, 60000))
try:
    set_interval(lambda: None, 1000)
except Exception as exc:
    refused = exc
clear_timeout(ids.pop())
ids.append(set_interval(lambda: None, 60000))  # a slot is free again
"""
    rt, _, match = make_runtime(script)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    err = s.namespace["refused"]
    assert isinstance(err, LimitExceeded)
    assert str(err) == ("set_interval: at most 100 timers may be active in a session "
                        "(VoxEngine's limit)")
    assert len(set(s.namespace["ids"])) == 100 and s.timers.active == 100
    await rt.stop()
    assert s.timers.active == 0  # timers die with the session


async def test_timer_callback_exception_ends_the_session_with_an_error():
    script = """
def boom():
    raise ValueError("timer went off badly")
set_timeout(boom, 1)
"""
    rt, store, match = make_runtime(script)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    await s.wait_ended(5)
    assert store.finished[0].finish_reason == "error"
    log = "\n".join(s.log_lines)
    assert "error in set_timeout callback: ValueError: timer went off badly" in log


async def test_timers_stop_at_terminating_and_are_refused_then():
    script = """
ticks = []
seen = {}
iv = set_interval(lambda: ticks.append(1), 10)
def on_terminating(e):
    seen["ticks_at_terminating"] = len(ticks)
    try:
        set_timeout(lambda: None, 10)
    except Exception as exc:
        seen["terminating"] = str(exc)
VoxEngine.add_event_listener(AppEvents.Terminating, on_terminating)
"""
    rt, _, match = make_runtime(script)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    await until(lambda: len(s.namespace["ticks"]) >= 2, "two ticks")
    s.terminate()
    await s.wait_ended(5)
    seen = s.namespace["seen"]
    assert seen["terminating"] == ("set_timeout: timers are not available once "
                                   "AppEvents.Terminating has fired")
    n = len(s.namespace["ticks"])
    assert n == seen["ticks_at_terminating"]
    await asyncio.sleep(0.05)
    assert len(s.namespace["ticks"]) == n


# -- lifetime rules ------------------------------------------------------------------------

AFTER_TERMINATED = """
import json
tried = {}
def on_terminated(e):
    Logger.write("still logging after Terminated")
    attempts = {
        "set_timeout": lambda: set_timeout(lambda: None, 1),
        "clear_interval": lambda: clear_interval(1),
        "custom_data": lambda: VoxEngine.custom_data(),
        "call_sip": lambda: VoxEngine.call_sip("sip:x@127.0.0.1"),
        "add_event_listener": lambda: VoxEngine.add_event_listener(AppEvents.Started, print),
        "Net": lambda: Net.http_request_async("http://127.0.0.1:9/"),
        "storage": lambda: ApplicationStorage.get("k"),
        "terminate": lambda: VoxEngine.terminate(),
    }
    for name, fn in attempts.items():
        try:
            fn()
            tried[name] = "worked"
        except Exception as exc:
            tried[name] = (type(exc).__name__, str(exc))
VoxEngine.add_event_listener(AppEvents.Terminated, on_terminated)
"""


async def test_after_terminated_only_logger_write_works():
    rt, store, match = make_runtime(AFTER_TERMINATED)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    s.terminate()
    await s.wait_ended(5)
    tried = s.namespace["tried"]
    assert set(tried) == {"set_timeout", "clear_interval", "custom_data", "call_sip",
                          "add_event_listener", "Net", "storage", "terminate"}
    rule = "the session has ended (AppEvents.Terminated has fired); after Terminated only " \
           "Logger.write works"
    assert tried["Net"] == ("SessionEndedError", f"Net.http_request_async: {rule}")
    assert tried["storage"] == ("SessionEndedError", f"ApplicationStorage.get: {rule}")
    assert tried["set_timeout"] == ("SessionEndedError", f"set_timeout: {rule}")
    assert tried["call_sip"] == ("SessionEndedError", f"VoxEngine.call_sip: {rule}")
    assert all(v[0] == "SessionEndedError" for v in tried.values())
    assert "still logging after Terminated" in "\n".join(s.log_lines)
    assert store.finished[0].finish_reason == "normal"  # the handler caught everything


async def test_a_terminated_handler_that_breaks_the_rule_marks_the_session_failed():
    script = ("VoxEngine.add_event_listener(AppEvents.Terminated, "
              "lambda e: VoxEngine.custom_data())")
    rt, store, match = make_runtime(script)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    s.terminate()
    await s.wait_ended(5)
    assert store.finished[0].finish_reason == "error"
    assert ("error in AppEvents.Terminated: SessionEndedError: VoxEngine.custom_data: the "
            "session has ended") in "\n".join(s.log_lines)
    with pytest.raises(SessionEndedError):
        s.namespace["VoxEngine"].call_pstn("+1555", "+1666")


async def test_no_handler_runs_after_the_terminated_handlers():
    script = """
heard = []
call = None
def on_started(e):
    global call
    call = VoxEngine.call_sip("sip:bob@127.0.0.1:5070")
    call.add_event_listener(CallEvents.Disconnected, lambda ev: heard.append("late"))
VoxEngine.add_event_listener(AppEvents.Started, on_started)
VoxEngine.add_event_listener(AppEvents.Terminated, lambda e: heard.append("terminated"))
"""
    rt, store, match = make_runtime(script)
    rt.dialer = dialer = FakeDialer()
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    dialer.legs[0].listener.leg_failed(486, "Busy Here", {})
    s.terminate()
    await s.wait_ended(10)
    s.namespace["call"].dispatch("CallEvents.Disconnected")  # a straggler event
    assert s.namespace["heard"] == ["terminated"]
    assert store.finished[0].finish_reason == "normal"


async def test_no_new_call_while_terminating():
    script = """
seen = {}
def on_terminating(e):
    try:
        VoxEngine.call_sip("sip:late@127.0.0.1")
    except Exception as exc:
        seen["err"] = str(exc)
VoxEngine.add_event_listener(AppEvents.Terminating, on_terminating)
"""
    rt, _, match = make_runtime(script)
    rt.dialer = dialer = FakeDialer()
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    s.terminate()
    await s.wait_ended(5)
    assert s.namespace["seen"]["err"] == ("VoxEngine.call_sip: no new calls once the session "
                                          "is terminating")
    assert dialer.legs == []


# -- call limits ---------------------------------------------------------------------------

CALLS = """
results = []
calls = []
def place(n):
    for i in range(n):
        call = VoxEngine.call_sip(f"sip:c{len(calls)}@127.0.0.1:5070")
        calls.append(call)
        call.add_event_listener(CallEvents.Failed,
                                lambda e: results.append((e.call.id(), e.code, e.reason)))
"""


async def test_the_51st_call_attempt_fails_with_403_call_limit_reached():
    rt, store, match = make_runtime(CALLS)
    rt.dialer = dialer = FakeDialer()
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    ns = s.namespace
    for _ in range(50):  # 50 attempts, each answered and hung up at once
        ns["place"](1)
        await asyncio.sleep(0)
        dialer.legs[-1].listener.leg_failed(486, "Busy Here", {})
    assert len(dialer.legs) == 50 and len(ns["results"]) == 50
    ns["place"](1)
    refused = ns["calls"][-1]
    assert ns["results"][-1][1] == 486  # Failed is asynchronous: not fired yet
    await until(lambda: len(ns["results"]) == 51, "the refused call's Failed event")
    assert ns["results"][-1] == (refused.id(), 403, CALL_LIMIT_REASON)
    assert len(dialer.legs) == 50  # nothing was sent
    assert refused.state() == "TERMINATED"
    assert "Call limit reached: at most 50 call attempts per session" in "\n".join(s.log_lines)
    await rt.stop()
    rec = store.finished[0].calls[-1]
    assert rec.result_code == 403 and not rec.successful and rec.finish_reason == "failed"


async def test_the_11th_unanswered_call_fails_and_answering_one_frees_a_slot():
    rt, _, match = make_runtime(CALLS)
    rt.dialer = dialer = FakeDialer()
    st = await rt.start_scenarios(match, None)
    ns = rt.sessions[st.session_id].namespace
    ns["place"](11)
    assert len(dialer.legs) == 10
    await until(lambda: len(ns["results"]) == 1, "the 11th call to fail")
    assert ns["results"][0] == (ns["calls"][10].id(), 403, CALL_LIMIT_REASON)
    dialer.legs[0].listener.leg_connected({})  # one answered: 9 unanswered now
    ns["place"](2)
    assert len(dialer.legs) == 11
    await until(lambda: len(ns["results"]) == 2, "the 13th call to fail")
    assert ns["results"][1][1:] == (403, CALL_LIMIT_REASON)
    await rt.stop()


# -- the handler watchdog ------------------------------------------------------------------

SPIN = """
import asyncio, time
ticks = []
def on_started(e):
    set_interval(lambda: ticks.append(1), 20)
    mode = VoxEngine.custom_data()
    if mode == "sync":
        set_timeout(spin, 50)
    elif mode == "async":
        set_timeout(spin_async, 50)
    elif mode == "swallow":
        set_timeout(swallow, 50)
def spin():
    Logger.write("about to spin")
    n = 0
    while True:
        n += 1
async def spin_async():
    await asyncio.sleep(0.01)
    Logger.write("async step spins")
    while True:
        pass
def swallow():
    try:
        while True:
            pass
    except BaseException:
        Logger.write("swallowed the interrupt")
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


@pytest.mark.parametrize("mode", ["sync", "async", "swallow"])
async def test_a_spinning_handler_is_interrupted_and_only_its_session_ends(mode):
    rt, store, match = make_runtime(SPIN)
    good = rt.sessions[(await rt.start_scenarios(match, "ok")).session_id]
    bad = rt.sessions[(await rt.start_scenarios(match, mode)).session_id]
    await bad.wait_ended(10)
    log = "\n".join(bad.log_lines)
    assert "handler kept the event loop busy for more than 0.3 s and was interrupted" in log
    assert "HandlerTimeoutError" in log
    assert [r.finish_reason for r in store.finished] == ["error"]
    if mode == "swallow":
        assert "swallowed the interrupt" in log
    # the other session carries on: its interval still ticks after the spin
    before = len(good.namespace["ticks"])
    await until(lambda: len(good.namespace["ticks"]) >= before + 3, "the other session's ticks")
    assert not good.ended
    await rt.stop()


async def test_a_spinning_scenario_top_level_fails_its_load():
    rt, store, match = make_runtime("while True:\n    pass\n")
    st = await rt.start_scenarios(match, None)
    s = rt.find_session(st.session_id)
    await s.wait_ended(10)
    assert store.finished[0].finish_reason == "error"
    assert "HandlerTimeoutError" in "\n".join(s.log_lines)


async def test_a_spinning_http_request_handler_gives_500_and_ends_its_session():
    script = ("def on_http(e):\n    while True:\n        pass\n"
              "VoxEngine.add_event_listener(AppEvents.HttpRequest, on_http)")
    rt, _, match = make_runtime(script)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    reply = await rt.access_request(s.id, s.secret, "GET", "/", b"", {})
    assert reply.status == 500
    await s.wait_ended(5)
    assert "error in AppEvents.HttpRequest: HandlerTimeoutError" in "\n".join(s.log_lines)


async def test_watchdog_off_when_the_limit_is_zero():
    busy = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.2:\n    pass\n"
    rt, _, match = make_runtime(busy + "ok = True", handler_time_limit=0)
    st = await rt.start_scenarios(match, None)
    assert rt.sessions[st.session_id].namespace["ok"]
    await rt.stop()
    rt, store, match = make_runtime(busy + "ok = True", handler_time_limit=0.05)
    st = await rt.start_scenarios(match, None)
    await rt.find_session(st.session_id).wait_ended(5)
    assert store.finished[0].finish_reason == "error"


def test_watchdog_brackets_nest_and_leak_no_interrupt():
    wd = Watchdog()
    seen = []

    def inner(x):
        seen.append(x)
        return x * 2

    # nested brackets keep the outer slot; fast code is never interrupted
    assert wd.call(None, 0.05, lambda: wd.call(None, 0.05, inner, 21)) == 42
    for i in range(2000):
        assert wd.call(None, 0.05, inner, i) == i * 2
    assert wd.interrupts == 0

    def spin():
        while True:
            pass

    with pytest.raises(HandlerTimeoutError):
        wd.call(None, 0.05, spin)
    assert wd.interrupts >= 1
    # after the bracket nothing is pending: plain code runs on undisturbed
    total = 0
    for i in range(200_000):
        total += i
    assert total == sum(range(200_000))


def test_watchdog_interrupts_only_its_own_thread():
    wd = get_watchdog()
    done = threading.Event()
    counted = []

    def other_thread():
        n = 0
        while not done.is_set():
            n += 1
        counted.append(n)

    t = threading.Thread(target=other_thread)
    t.start()
    try:
        with pytest.raises(HandlerTimeoutError):
            wd.call(None, 0.05, lambda: [None for _ in iter(int, 1)])
    finally:
        done.set()
        t.join(5)
    assert counted and counted[0] > 0
