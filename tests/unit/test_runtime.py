"""Runtime unit tests: sessions, scenarios, events, calls, access URLs (no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.media.format import PCMA_8K, PCMU_8K, AudioFrame
from gateway.runtime.manager import Runtime
from gateway.runtime.records import RuleMatch, ScenarioSource
from tests.fakes.fake_leg import FakeLeg
from tests.fakes.memory_store import MemoryStore


def make_runtime(*scripts: str, idle: float = 60.0) -> tuple[Runtime, MemoryStore, RuleMatch]:
    store = MemoryStore()
    match = RuleMatch(1, 1, "app", 1, "rule",
                      [ScenarioSource(i, f"s{i}", s) for i, s in enumerate(scripts)])
    store.rules.append(("agent.*", match))
    rt = Runtime(store, "http://127.0.0.1:8080", idle_timeout=idle)
    return rt, store, match


async def finished(store: MemoryStore) -> None:
    """Wait (up to 1 s) until a session CDR has been written."""
    for _ in range(50):
        if store.finished:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no session ended")


class FakeDialer:
    def __init__(self) -> None:
        self.legs: list[FakeLeg] = []

    def new_outbound_leg(self, uri, *, callerid, display_name="", headers=None, auth=None):
        leg = FakeLeg(incoming=False, number=uri, callerid=callerid, fmt=None)
        leg.uri, leg.auth = uri, auth
        self.legs.append(leg)
        return leg


INBOUND = """
seen = []
def on_alert(e):
    seen.append(("alert", e.callerid, e.destination, e.headers.get("X-Tag")))
    e.call.add_event_listener(CallEvents.Connected, lambda ev: seen.append("connected"))
    e.call.answer()
VoxEngine.add_event_listener(AppEvents.Started, lambda e: seen.append(("started", e.access_url)))
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""


async def test_inbound_call_runs_scenario_and_answers():
    rt, store, _ = make_runtime(INBOUND)
    leg = FakeLeg(number="agent1", headers={"X-Tag": "t1"})
    assert await rt.on_incoming(leg)
    await asyncio.sleep(0.01)
    (session,) = rt.sessions.values()
    seen = session.namespace["seen"]
    assert seen[0] == ("started", session.access_url)
    assert seen[1] == ("alert", "alice", "agent1", "t1")
    assert ("answer", None) in leg.actions
    assert "connected" in seen
    assert store.started[0].rule_name == "rule"


async def test_unmatched_number_is_refused():
    rt, _, _ = make_runtime(INBOUND)
    assert not await rt.on_incoming(FakeLeg(number="nobody"))
    assert not rt.sessions


async def test_scenarios_share_one_namespace_in_order():
    rt, _, match = make_runtime("order = ['a']\nx = 1", "order.append('b')\ny = x + 1")
    started = await rt.start_scenarios(match, '{"k": 1}')
    s = rt.sessions[started.session_id]
    assert s.namespace["order"] == ["a", "b"] and s.namespace["y"] == 2
    assert started.media_session_access_url.endswith(f"/sessions/{s.id}/{s.secret}")
    await rt.stop()


async def test_handler_exception_ends_only_that_session():
    script = """
def boom(e):
    if VoxEngine.custom_data() == "bad":
        raise RuntimeError("kaboom")
VoxEngine.add_event_listener(AppEvents.Started, boom)
"""
    rt, store, match = make_runtime(script)
    good = await rt.start_scenarios(match, "good")
    bad = await rt.start_scenarios(match, "bad")
    await asyncio.sleep(0.05)
    assert bad.session_id not in rt.sessions
    assert good.session_id in rt.sessions
    (rec,) = store.finished
    assert rec.session_id == bad.session_id and rec.finish_reason == "error"
    s = rt.sessions[good.session_id]
    assert not s.ended
    await rt.stop()


async def test_exception_hangs_up_calls_and_writes_cdr():
    script = """
def on_alert(e):
    e.call.answer()
    def fail(ev):
        raise ValueError("bad handler")
    e.call.add_event_listener(CallEvents.Connected, fail)
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""
    rt, store, _ = make_runtime(script)
    leg = FakeLeg()
    await rt.on_incoming(leg)
    await finished(store)
    assert ("hangup",) in leg.actions
    (rec,) = store.finished
    assert rec.finish_reason == "error"
    assert rec.calls[0].successful and rec.calls[0].finish_reason == "normal"


async def test_async_handler_error_is_caught():
    script = """
async def on_started(e):
    await asyncio.sleep(0)
    raise KeyError("x")
import asyncio
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""
    rt, store, match = make_runtime(script)
    await rt.start_scenarios(match, None)
    await finished(store)
    assert store.finished[0].finish_reason == "error"


async def test_session_with_no_calls_ends_after_idle_timeout():
    rt, store, match = make_runtime("fired = []\n"
                                    "VoxEngine.add_event_listener(AppEvents.Terminating, "
                                    "lambda e: fired.append(1))", idle=0.1)
    started = await rt.start_scenarios(match, None)
    s = rt.sessions[started.session_id]
    await s.wait_ended(2)
    assert s.namespace["fired"] == [1]
    assert store.finished[0].finish_reason == "normal"


async def test_outbound_call_via_dialer_and_failed_event():
    script = """
log = []
def on_started(e):
    opts = {"callerid": "+1555", "headers": {"X-A": "1"}}
    call = VoxEngine.call_sip("sip:bob@127.0.0.1:5070", opts)
    def failed(ev):
        log.append(ev.code)
        VoxEngine.terminate()
    call.add_event_listener(CallEvents.Failed, failed)
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""
    rt, store, match = make_runtime(script)
    rt.dialer = dialer = FakeDialer()
    started = await rt.start_scenarios(match, None)
    s = rt.sessions[started.session_id]
    await asyncio.sleep(0.01)
    (leg,) = dialer.legs
    assert leg.uri == "sip:bob@127.0.0.1:5070" and leg.callerid == "+1555"
    assert ("dial",) in leg.actions
    leg.listener.leg_failed(486, "Busy Here", {})
    await s.wait_ended(2)
    assert s.namespace["log"] == [486]
    call_rec = store.finished[0].calls[0]
    assert call_rec.finish_reason == "busy" and call_rec.result_code == 486


async def test_call_pstn_uses_trunk():
    rt, _, match = make_runtime(
        "def st(e):\n  VoxEngine.call_pstn('+1 555 000', '+1999')\n"
        "VoxEngine.add_event_listener(AppEvents.Started, st)")
    rt.dialer = dialer = FakeDialer()
    rt.trunk_uri = "sip:trunk.example.com:5099;transport=udp"
    await rt.start_scenarios(match, None)
    assert dialer.legs[0].uri == "sip:+1555000@trunk.example.com:5099;transport=udp"
    await rt.stop()


async def test_media_routing_passthrough_and_replacement():
    rt, _, match = make_runtime("")
    started = await rt.start_scenarios(match, None)
    s = rt.sessions[started.session_id]
    a, b, c = (s.add_call(FakeLeg(fmt=f)) for f in (PCMU_8K, PCMU_8K, PCMA_8K))
    s.namespace["VoxEngine"].send_media_between(a, b)
    frame = AudioFrame(b"\x01" * 160, PCMU_8K)
    a.leg_audio(frame)
    assert b._leg.played[-1] is frame  # same law: no decode, no encode
    c.send_media_to(b)  # replaces a as b's source
    a.leg_audio(frame)
    assert len(b._leg.played) == 1
    c.leg_audio(AudioFrame(b"\xd5" * 160, PCMA_8K))
    out = b._leg.played[-1]
    assert out.format == PCMU_8K and len(out.data) == 160
    await rt.stop()


async def test_access_url_http_request_and_secret():
    script = """
def on_http(e):
    return {"method": e.method, "body": e.content}
VoxEngine.add_event_listener(AppEvents.HttpRequest, on_http)
"""
    rt, _, match = make_runtime(script)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    ok = await rt.access_request(s.id, s.secret, "POST", "/", b"hello", {})
    assert ok.status == 200 and b'"body": "hello"' in ok.body
    bad = await rt.access_request(s.id, s.secret + "x", "POST", "/", b"", {})
    assert bad.status == 404
    await rt.stop()
    gone = await rt.access_request(s.id, s.secret, "GET", "/", b"", {})
    assert gone.status == 404


async def test_scenario_that_raises_at_load_ends_session():
    rt, store, match = make_runtime("raise SystemError('nope')")
    await rt.start_scenarios(match, None)
    await finished(store)
    assert store.finished[0].finish_reason == "error"


async def test_send_digits_and_tones():
    rt, _, match = make_runtime("tones = []")
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    call = s.add_call(FakeLeg())
    tones = s.namespace["tones"]
    call.add_event_listener("CallEvents.ToneReceived", lambda e: tones.append(e.tone))
    call.leg_tone("5", 1)  # not handled yet
    call.handle_tones(True)
    call.leg_tone("7", 1)
    assert s.namespace["tones"] == ["7"]
    call.send_digits("12#")
    assert ("digits", "12#") in call._leg.actions
    with pytest.raises(ValueError):
        call.send_digits("12x")
    await rt.stop()


async def test_get_secret_value_and_active_sessions():
    rt, store, match = make_runtime("key = VoxEngine.get_secret_value('OPENAI')\n"
                                    "try:\n    VoxEngine.get_secret_value('nope')\n"
                                    "except KeyError as e:\n    missing = str(e)")

    async def secret_values(account_id):
        return {"OPENAI": "sk-secret"} if account_id == 1 else {}

    store.secret_values = secret_values
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    assert s.namespace["key"] == "sk-secret" and "nope" in s.namespace["missing"]
    assert rt.active_sessions(1) == 1 and rt.active_sessions(2) == 0
    assert "sk-secret" not in "\n".join(s.log_lines)
    await rt.stop()


async def test_session_log_has_writes_events_and_traceback(tmp_path):
    script = """
def on_started(e):
    Logger.write("hello from the scenario", 42)
    Logger.write("log url", e.log_url)
    helper()
def helper():
    raise ValueError("boom in helper")
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""
    rt, store, match = make_runtime(script)
    rt.logs_dir = tmp_path
    st = await rt.start_scenarios(match, None)
    await finished(store)
    text = await rt.session_log(1, st.session_id)
    assert "hello from the scenario 42" in text
    assert f"log url http://127.0.0.1:8080/logs/{st.session_id}" in text
    assert "event AppEvents.Started" in text and "event AppEvents.Terminated" in text
    assert "ValueError: boom in helper" in text and "in helper" in text
    assert (tmp_path / "1" / f"{st.session_id}.log").read_text() == text
    rt.recent.clear()  # now only the file answers
    assert await rt.session_log(1, st.session_id) == text
    assert await rt.session_log(2, st.session_id) is None  # another account
    assert await rt.session_log(1, "../../etc/passwd") is None


async def test_http_request_handler_deadline_gives_504_and_none_gives_204():
    script = """
import asyncio
async def on_http(e):
    if e.path == "/slow":
        await asyncio.sleep(10)
    if e.path == "/none":
        return None
    return [1, 2]
VoxEngine.add_event_listener(AppEvents.HttpRequest, on_http)
"""
    rt, _, match = make_runtime(script)
    rt.http_handler_timeout = 0.2
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    slow = await rt.access_request(s.id, s.secret, "GET", "/slow", b"", {})
    assert slow.status == 504
    none = await rt.access_request(s.id, s.secret, "GET", "/none", b"", {})
    assert none.status == 204 and none.body == b""
    ok = await rt.access_request(s.id, s.secret, "GET", "/", b"", {})
    assert ok.status == 200 and ok.body == b"[1, 2]" and ok.content_type == "application/json"
    assert not s.ended  # a slow handler is the caller's problem, not the session's
    await rt.stop()
