"""Scenario services against real sockets and a real store: ``Net.http_request_async``
(local HTTP server), ``ApplicationStorage`` (SQLite here; PostgreSQL in
test_app_storage.py), and the HTTP rule around ``AppEvents.Terminating``."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.runtime.manager import Runtime
from gateway.runtime.net import LIMIT_ERROR, MAX_IN_FLIGHT
from gateway.runtime.records import RuleMatch, ScenarioSource
from gateway.store import open_store
from tests.fakes.fake_http_backend import FakeHttpBackend
from tests.fakes.memory_store import MemoryStore
from tests.peers import free_port


async def until(cond, what: str, timeout: float = 10.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def runtime_for(script: str, store=None, app_id: int = 1) -> tuple[Runtime, RuleMatch]:
    match = RuleMatch(1, app_id, "app", 1, "rule", [ScenarioSource(1, "s", script)])
    return Runtime(store or MemoryStore(), "http://127.0.0.1:8080"), match


@pytest.fixture
async def web():
    async with FakeHttpBackend() as backend:
        yield backend


# -- Net -----------------------------------------------------------------------------------

NET = """
import json
results = {}
async def fetch(name, *args, **kw):
    results[name] = await Net.http_request_async(*args, **kw)
"""


async def run_net(script_tail: str, *calls: tuple) -> dict:
    rt, match = runtime_for(NET + script_tail)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    ns = s.namespace
    for name, args, kw in calls:
        s.run_in_context(asyncio.ensure_future, ns["fetch"](name, *args, **kw))
    await until(lambda: len(ns["results"]) == len(calls), "the requests")
    await rt.stop()
    return ns["results"]


async def test_http_request_async_result_has_code_headers_text_and_error(web):
    res = await run_net("", (
        "post", (web.url("/echo"),),
        {"method": "POST", "headers": {"X-Token": "t1"}, "post_data": '{"a": 1}',
         "params": {"q": "1"}}),
        ("list_headers", (web.url("/echo"),), {"headers": ["X-One: 1", "Accept: text/plain"]}),
        ("status", (web.url("/status/503"),), {}),
        ("latin1", (web.url("/latin1"),), {}),
    )
    post = res["post"]
    assert post.code == 200 and post.error is None
    body = json.loads(post.text)
    assert body["method"] == "POST" and body["body"] == '{"a": 1}'
    assert body["headers"]["x-token"] == "t1" and body["query"] == {"q": "1"}
    assert post.headers["content-type"] == "application/json"
    assert post.headers["set-cookie"] == "a=1, b=2"
    assert ("Set-Cookie", "b=2") in post.raw_headers
    assert post.data == post.text.encode()
    listed = json.loads(res["list_headers"].text)["headers"]
    assert listed["x-one"] == "1" and listed["accept"] == "text/plain"
    assert res["status"].code == 503 and res["status"].error is None  # HTTP status, no error
    assert res["status"].text == "status 503"
    assert res["latin1"].text == "café"


async def test_timeouts_and_failures_give_an_error_result_never_an_exception(web):
    closed = f"http://127.0.0.1:{free_port()}/"
    res = await run_net("", ("slow", (web.url("/slow/3000"),), {"timeout": 0.2}),
                        ("refused", (closed,), {}),
                        ("bad_url", ("ftp://example.com/",), {}),
                        ("bad_header", (web.url("/echo"),), {"headers": ["no colon"]}),
                        ("big", (web.url(f"/big/{3 * 1024 * 1024}"),), {}))
    assert res["slow"].code == 0 and res["slow"].error == "timed out after 0.2 s"
    assert res["refused"].code == 0 and res["refused"].error.startswith("ConnectError")
    assert "http:// or https://" in res["bad_url"].error
    assert "is not 'Name: value'" in res["bad_header"].error
    assert res["big"].error == "response larger than 2097152 bytes"


LOAD = """
import asyncio
results = []
refused = []
def on_started(e):
    for i in range(MAX + 1):
        fut = Net.http_request_async(URL)
        if fut.done() and fut.result().error:
            refused.append((i, fut.result().error))
        else:
            async def keep(f=fut):
                results.append(await f)
            asyncio.ensure_future(keep())
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def test_three_run_at_once_the_rest_queue_and_the_36th_is_refused(web):
    script = LOAD.replace("MAX", str(MAX_IN_FLIGHT)).replace("URL", repr(web.url("/hold")))
    rt, match = runtime_for(script)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    ns = s.namespace
    assert ns["refused"] == [(35, f"{LIMIT_ERROR} (at most 35 requests in flight per session, "
                                  f"3 running at once)")]
    await web.wait_held(3)
    assert s.net.running == 3 and s.net.in_flight == 35
    for _ in range(20):  # the queue does not start a 4th while 3 are held
        await asyncio.sleep(0.01)
    assert web.held == 3 and len(web.requests) == 3
    web.release()
    await until(lambda: len(ns["results"]) == 35, "every queued request")
    assert all(r.code == 200 and r.text == "released" for r in ns["results"])
    assert web.max_concurrent == 3
    assert s.net.in_flight == 0 and s.net.running == 0
    # the budget is free again
    again = await s.net.http_request_async(web.url("/echo"))
    assert again.code == 200
    await rt.stop()


TERMINATING = """
import asyncio
seen = {}
def on_started(e):
    first = Net.http_request_async(HOLD)
    async def slow():
        seen["running"] = await first
    asyncio.ensure_future(slow())
    for _ in range(3):  # 2 more run; the 4th waits in the queue
        Net.http_request_async(HOLD)
async def on_terminating(e):
    seen["running_done_before_terminating"] = "running" in seen
    first = Net.http_request_async(ECHO + "?n=final")
    second = await Net.http_request_async(ECHO + "?n=second")
    seen["second"] = second.error
    seen["final"] = (await first).code
def on_terminated(e):
    seen["terminated"] = True
VoxEngine.add_event_listener(AppEvents.Started, on_started)
VoxEngine.add_event_listener(AppEvents.Terminating, on_terminating)
VoxEngine.add_event_listener(AppEvents.Terminated, on_terminated)
"""


async def test_terminating_allows_one_more_request_and_waits_for_running_ones(web):
    script = (TERMINATING.replace("HOLD", repr(web.url("/hold")))
              .replace("ECHO", repr(web.url("/echo"))))
    rt, match = runtime_for(script)
    st = await rt.start_scenarios(match, None)
    s = rt.sessions[st.session_id]
    await web.wait_held(3)
    s.terminate()
    await until(lambda: s.phase == "ending", "the session to start ending")
    refused = await s.net.http_request_async(web.url("/echo"))
    assert "the session is ending" in refused.error
    web.release()
    await s.wait_ended(10)
    seen = s.namespace["seen"]
    assert seen["running_done_before_terminating"] and seen["running"].code == 200
    assert seen["second"] == ("only one HTTP request may be made after AppEvents.Terminating "
                              "(VoxEngine's rule)")
    assert seen["final"] == 200 and seen["terminated"]
    paths = [(r["path"], r["query"].get("n")) for r in web.requests]
    assert paths.count(("/hold", None)) == 3  # the queued one was dropped, never sent
    assert ("/echo", "final") in paths and ("/echo", "second") not in paths


# -- ApplicationStorage --------------------------------------------------------------------

STORAGE = """
import asyncio
out = {}
async def on_started(e):
    mode = VoxEngine.custom_data()
    if mode == "writer":
        out["put"] = await ApplicationStorage.put("calls:total", "1", 60)
        out["put2"] = await ApplicationStorage.put("calls:last", "alice")
        out["other"] = await ApplicationStorage.put("other", "x", 10**9)  # > 90 days
        out["gone"] = await ApplicationStorage.put("gone", "y", 0)
        out["updated"] = await ApplicationStorage.put("calls:total", "2", 120)
    elif mode == "reader":
        out["get"] = await ApplicationStorage.get("calls:total")
        out["missing"] = await ApplicationStorage.get("nope")
        out["gone"] = await ApplicationStorage.get("gone")
        out["keys"] = list(await ApplicationStorage.keys("calls:"))
        out["all"] = list(await ApplicationStorage.keys())
        out["case"] = list(await ApplicationStorage.keys("CALLS"))
        out["deleted"] = await ApplicationStorage.delete("calls:last")
        out["removed_again"] = await ApplicationStorage.remove("calls:last")
        out["after"] = list(await ApplicationStorage.keys("calls:"))
    for bad in ("k" * 201, 5):
        try:
            ApplicationStorage.get(bad)
        except Exception as exc:
            out.setdefault("errors", []).append(str(exc))
    try:
        ApplicationStorage.put("k", "v" * 2001)
    except ValueError as exc:
        out.setdefault("errors", []).append(str(exc))
    out["done"] = True
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def test_application_storage_is_persisted_per_application(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path / 'gw.db'}")
    try:
        await store.ensure_account(1, "one", "key")
        app = await store.add_application(1, "app")
        other_app = await store.add_application(1, "other")
        rt, match = runtime_for(STORAGE, store, app.application_id)
        rt2, other = runtime_for(STORAGE, store, other_app.application_id)

        async def run(runtime, m, mode):
            st = await runtime.start_scenarios(m, mode)
            ns = runtime.sessions[st.session_id].namespace
            await until(lambda: ns["out"].get("done"), f"the {mode} session")
            return ns["out"]

        wrote = await run(rt, match, "writer")
        assert wrote["put"].key == "calls:total" and wrote["put"].value == "1"
        assert wrote["put"].ttl == 60
        assert wrote["put2"].ttl == 2_592_000  # default: 30 days
        assert wrote["other"].ttl == 7_776_000  # rounded down to 90 days
        assert wrote["updated"].value == "2"
        assert wrote["errors"] == [
            "ApplicationStorage.get: key is 201 characters, the limit is 200",
            "ApplicationStorage.get: key must be a str, got int",
            "ApplicationStorage.put: value is 2001 characters, the limit is 2000"]

        got = await run(rt, match, "reader")  # another session of the same application
        assert got["get"].value == "2" and 0 < got["get"].ttl <= 120
        assert got["get"].expire_at == wrote["updated"].expire_at
        assert got["missing"] is None and got["gone"] is None  # ttl 0: expired at once
        assert got["keys"] == ["calls:last", "calls:total"]
        assert got["all"] == ["calls:last", "calls:total", "other"]
        assert got["case"] == []  # prefixes are case-sensitive
        assert got["deleted"].value == "alice" and got["deleted"].ttl == 0
        assert got["removed_again"] is None
        assert got["after"] == ["calls:total"]

        elsewhere = await run(rt2, other, "reader")  # another application sees nothing
        assert elsewhere["get"] is None and elsewhere["all"] == []
        await rt.stop()
        await rt2.stop()
        assert await store.app_storage_keys(app.application_id, "", 10) == ["calls:total",
                                                                              "other"]
        await store.del_applications(1, application_ids=[app.application_id])
        assert await store.app_storage_keys(app.application_id, "", 10) == []
    finally:
        await store.close()


async def test_application_storage_without_a_persisting_store_says_so():
    rt, match = runtime_for("try:\n    ApplicationStorage.get('k')\n"
                            "except Exception as exc:\n    err = str(exc)")
    st = await rt.start_scenarios(match, None)
    assert rt.sessions[st.session_id].namespace["err"] == (
        "ApplicationStorage.get: this gateway's store does not persist ApplicationStorage")
    await rt.stop()
