"""Recordings end to end without SIP: a conference recorded with
``conference.send_media_to(recorder)`` (the full mix, by spectrum), and a real runtime +
SQLite store + HTTP API where scenario code records, ``GetCallHistory(with_records=true)``
lists the record and ``GET /records/{record_id}`` serves it to its account only."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from gateway.api import create_app
from gateway.api.recordings import recording_file
from gateway.media.format import PCMU_8K, AudioFrame
from gateway.runtime.manager import Runtime
from gateway.runtime.records import RecordingRecord, RuleMatch, ScenarioSource
from gateway.settings import Settings
from gateway.store import Store, open_store
from tests.fakes.fake_leg import FakeLeg
from tests.unit.test_recorder import RecordingStore, Ticker, Tone, share

ONE = {"account_id": "1", "api_key": "key-one"}
TWO = {"account_id": "2", "api_key": "key-two"}
FREQS = (500.0, 1240.0)

CONFERENCE = """
from gateway.runtime.recorder import RecorderEvents

log = []
conf = VoxEngine.create_conference()
rec = VoxEngine.create_recorder({"name": "the room"})
conf.send_media_to(rec)
rec.add_event_listener(RecorderEvents.Stopped, lambda e: log.append(("stopped", e.duration)))

def join(call):
    VoxEngine.send_media_between(call, conf)
"""


async def test_a_conference_recording_holds_the_full_mix(tmp_path):
    store = RecordingStore()
    rt = Runtime(store, "http://gw.test", recordings_dir=tmp_path / "rec")
    match = RuleMatch(1, 1, "app", 1, "rule", [ScenarioSource(1, "conf", CONFERENCE)])
    try:
        started = await rt.start_scenarios(match, None)
        session = rt.sessions[started.session_id]
        ns = session.namespace
        a, b = session.add_call(FakeLeg()), session.add_call(FakeLeg())
        ns["join"](a)
        ns["join"](b)
        tones = {a: Tone(FREQS[0]), b: Tone(FREQS[1])}
        ticker = Ticker()
        ticker.actions.append(lambda: [c.leg_audio(t.frame()) for c, t in tones.items()])
        try:
            await ticker.wait(100)
            ns["rec"].stop()
            await ns["rec"].wait_stopped(10)
        finally:
            ticker.close()
        rec = ns["rec"]
        assert ns["log"] == [("stopped", rec.duration)]
        with wave.open(str(rec.path), "rb") as w:
            assert (w.getnchannels(), w.getframerate()) == (1, 8000)
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
        assert len(x) == round(rec.duration * 8000)
        tail = x[-8000:]
        assert share(tail, FREQS[0], 8000) > 0.3 and share(tail, FREQS[1], 8000) > 0.3
        assert share(tail, FREQS[0], 8000) + share(tail, FREQS[1], 8000) > 0.9
        assert store.recordings[0].record_name == "the room"
    finally:
        await rt.stop()


def test_stored_paths_cannot_leave_the_recordings_dir(tmp_path):
    assert recording_file(tmp_path, "1/s/a.wav") == tmp_path / "1" / "s" / "a.wav"
    for bad in ("../x.wav", "1/../../x", "/etc/passwd", ""):
        assert recording_file(tmp_path, bad) is None


# -- runtime + store + API ----------------------------------------------------------

RECORDING = """
log = []
state = {}

def on_http(e):
    if e.path.endswith("/start"):
        state["rec"] = VoxEngine.create_recorder(format=e.content or "wav", name="memo")
        return state["rec"].url
    state["rec"].stop()
    return "stopping"

VoxEngine.add_event_listener(AppEvents.HttpRequest, on_http)
"""


@dataclass
class Env:
    client: httpx.AsyncClient
    store: Store
    runtime: Runtime
    recordings: Path

    async def ok(self, cmd: str, auth: dict[str, str] = ONE, **params: object) -> dict:
        data = {"cmd": cmd, **auth, **{k: str(v) for k, v in params.items()}}
        body = (await self.client.post("/platform_api", data=data)).json()
        assert "error" not in body, body
        return body


@pytest.fixture
async def env(tmp_path) -> AsyncIterator[Env]:
    store = await open_store(f"sqlite:///{tmp_path / 'gw.db'}")
    await store.ensure_account(1, "one", ONE["api_key"])
    await store.ensure_account(2, "two", TWO["api_key"])
    recordings = tmp_path / "recordings"
    settings = Settings(recordings_dir=str(recordings), public_url="http://gw.test")
    runtime = Runtime(store, settings.http_base_url(), recordings_dir=settings.recordings_dir)
    app = create_app(store=store, runner=runtime, settings=settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            yield Env(client, store, runtime, recordings)
    finally:
        await runtime.stop()
        await store.close()


async def record_in_a_session(env: Env, fmt: str) -> tuple[dict, str, object]:
    app_id = (await env.ok("AddApplication", application_name="rec"))["application_id"]
    await env.ok("AddScenario", scenario_name="rec", scenario_script=RECORDING)
    rule = (await env.ok("AddRule", application_id=app_id, rule_name="rec",
                         rule_pattern="x", scenario_name="rec"))["rule_id"]
    started = await env.ok("StartScenarios", rule_id=rule)
    access = started["media_session_access_url"].removeprefix("http://gw.test")
    url = (await env.client.post(f"{access}/start", content=fmt)).text
    session = next(iter(env.runtime.sessions.values()))
    rec = session.namespace["state"]["rec"]
    src = FakeLeg()
    call = session.add_call(src)
    call.send_media_to(rec)
    tone = Tone(FREQS[0])
    ticker = Ticker()
    ticker.actions.append(lambda: call.leg_audio(AudioFrame(tone.frame().data, PCMU_8K)))
    try:
        await ticker.wait(60)
        await env.client.post(f"{access}/stop")
        await rec.wait_stopped(10)
    finally:
        ticker.close()
    for _ in range(20):
        if rec.record is not None and rec.record.record_id is not None:
            break
        await asyncio.sleep(0.01)
    return started, url, rec


async def test_history_lists_the_record_and_only_its_account_downloads_it(env: Env):
    started, url, rec = await record_in_a_session(env, "wav")
    assert url == f"http://gw.test/records/{rec.id()}"
    record: RecordingRecord = rec.record
    assert record.record_id is not None

    history = await env.ok("GetCallHistory", with_records="true",
                           call_session_history_id=started["call_session_history_id"])
    (item,) = history["result"][0]["records"]
    assert item["record_id"] == record.record_id
    assert item["record_url"] == url
    assert item["record_name"] == "memo"
    assert item["duration_ms"] == round(rec.duration * 1000)
    assert item["duration"] == round(rec.duration)
    assert item["file_size"] == rec.path.stat().st_size
    assert item["start_time"] == rec.start_time.strftime("%Y-%m-%d %H:%M:%S")
    assert "call_id" not in item and item["format"] == "wav"
    plain = await env.ok("GetCallHistory")
    assert "records" not in plain["result"][0]
    other = await env.ok("GetCallHistory", auth=TWO, with_records="true")
    assert other["result"] == []

    path = url.removeprefix("http://gw.test")
    body = rec.path.read_bytes()
    for ref in (path, f"/records/{record.record_id}"):
        reply = await env.client.get(ref, params=ONE)
        assert reply.status_code == 200, reply.text
        assert reply.content == body
        assert reply.headers["content-type"] == "audio/wav"
    no_auth = await env.client.get(path)
    assert no_auth.status_code == 401 and no_auth.json()["error"]["code"] == 100
    bad_key = await env.client.get(path, params={**ONE, "api_key": "wrong"})
    assert bad_key.status_code == 401
    assert (await env.client.get(path, params=TWO)).status_code == 404
    assert (await env.client.get(f"/records/{record.record_id}", params=TWO)).status_code == 404
    assert (await env.client.get("/records/123456", params=ONE)).status_code == 404
    assert (await env.client.get("/records/..%2F..%2Fgw.db", params=ONE)).status_code == 404


async def test_an_mp3_record_is_served_as_audio_mpeg(env: Env):
    _started, url, rec = await record_in_a_session(env, "mp3")
    reply = await env.client.get(url.removeprefix("http://gw.test"), params=ONE)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "audio/mpeg"
    assert reply.content == rec.path.read_bytes()
    assert rec.path.suffix == ".mp3"
    (session,) = env.runtime.sessions.values()
    assert rec.path == env.recordings / "1" / session.id / f"{rec.id()}.mp3"
