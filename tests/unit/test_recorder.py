"""Recorders (gateway/runtime/recorder.py) and ``call.record`` (call_recording.py) on the
real media clock with in-memory call legs: WAV and MP3 files, stereo channel placement
(caller left, the other side right), the mono mix, durations, events, the store
registration, barge-in, the end of the call, and writing off the event loop."""

from __future__ import annotations

import asyncio
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.media.clock import get_media_clock
from gateway.media.format import PCM16_16K, PCMU_8K, AudioFormat, AudioFrame
from gateway.media.g711 import pcm16_to_ulaw
from gateway.runtime import recorder as recorder_mod
from gateway.runtime.constants import CallEvents
from gateway.runtime.manager import Runtime
from gateway.runtime.recorder import (
    Recorder,
    RecorderError,
    RecorderEvents,
    RecorderTap,
    create_recorder,
)
from gateway.runtime.records import RecordingRecord, RuleMatch, ScenarioSource
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_leg import FakeLeg
from tests.fakes.memory_store import MemoryStore

CALLER_HZ, OTHER_HZ = 500.0, 1240.0


class RecordingStore(MemoryStore):
    """MemoryStore that also takes recordings (``SessionStore.recording_finished``)."""

    def __init__(self) -> None:
        super().__init__()
        self.recordings: list[RecordingRecord] = []

    async def recording_finished(self, record: RecordingRecord) -> int:
        self.recordings.append(record)
        return len(self.recordings)


class Tone:
    """A phase-continuous sine in 20 ms frames of ``fmt`` (PCMU or PCM16)."""

    def __init__(self, freq: float, fmt: AudioFormat = PCMU_8K, amp: float = 6000.0) -> None:
        self.freq, self.fmt, self.amp, self.n = freq, fmt, amp, 0

    def frame(self) -> AudioFrame:
        count = self.fmt.frame_samples()
        t = (self.n + np.arange(count)) / self.fmt.sample_rate
        self.n += count
        pcm = np.round(self.amp * np.sin(2 * np.pi * self.freq * t)).astype("<i2").tobytes()
        return AudioFrame(pcm16_to_ulaw(pcm) if self.fmt == PCMU_8K else pcm, self.fmt)


class Ticker:
    """Runs ``actions`` once per media clock tick and counts ticks."""

    def __init__(self) -> None:
        self.actions: list[Any] = []
        self.ticks = 0
        self._clock = get_media_clock()
        self._handle = self._clock.subscribe(self._tick)
        self._changed = asyncio.Event()

    def _tick(self) -> None:
        for action in list(self.actions):
            action()
        self.ticks += 1
        self._changed.set()

    async def wait(self, ticks: int, timeout: float = 20.0) -> None:
        target = self.ticks + ticks
        async with asyncio.timeout(timeout):
            while self.ticks < target:
                self._changed.clear()
                await self._changed.wait()

    def close(self) -> None:
        self._clock.unsubscribe(self._handle)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples (frames x channels, float) and rate of a PCM16 WAV."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
        return data.reshape(-1, w.getnchannels()), w.getframerate()


def read_mp3(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate
        chunks = [f.to_ndarray() for f in c.decode(audio=0)]
    data = np.concatenate(chunks, axis=1).T.astype(np.float64)
    if np.abs(data).max() <= 1.5:  # float planar output
        data *= 32768
    return data, rate


def share(x: np.ndarray, freq: float, rate: int) -> float:
    """Fraction of the signal's energy within 30 Hz of ``freq``."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    total = spec[f > 50].sum()
    return float(spec[np.abs(f - freq) < 30].sum() / total) if total else 0.0


@pytest.fixture
async def runtime(tmp_path):
    store = RecordingStore()
    rt = Runtime(store, "http://gw.test:8080", recordings_dir=tmp_path / "rec")
    yield rt
    await rt.stop()


async def new_session(rt: Runtime, script: str = "state = {}\n") -> Any:
    match = RuleMatch(7, 1, "app", 1, "rule", [ScenarioSource(1, "s", script)])
    started = await rt.start_scenarios(match, None)
    return rt.sessions[started.session_id]


async def connected_call(session: Any) -> Any:
    call = session.add_call(FakeLeg())
    call.answer()
    for _ in range(10):
        await asyncio.sleep(0)
    assert call.state() == "CONNECTED"
    return call


def events_of(target: Any, *names: str) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        target.add_event_listener(name, lambda ev, n=name: seen.append((n, ev.to_dict())))
    return seen


# -- the generic recorder --------------------------------------------------------------


async def test_mono_wav_records_what_is_sent_at_real_time(tmp_path):
    ticker = Ticker()
    rec = Recorder(path=tmp_path / "a.wav")
    seen = events_of(rec, RecorderEvents.Started, RecorderEvents.Stopped)
    src = FakeCall(PCMU_8K)
    src.send_media_to(rec)
    tone = Tone(CALLER_HZ)
    ticker.actions.append(lambda: src.push(tone.frame().data))
    try:
        await ticker.wait(100)
        rec.stop()
        await rec.wait_stopped(10)
    finally:
        ticker.close()
    assert [n for n, _ in seen] == [RecorderEvents.Started, RecorderEvents.Stopped]
    assert seen[0][1]["url"] == rec.url == (tmp_path / "a.wav").resolve().as_uri()
    data, rate = read_wav(tmp_path / "a.wav")
    assert rate == 8000 and data.shape[1] == 1
    assert len(data) == round(rec.duration * 8000)  # one 20 ms frame per tick
    assert seen[1][1]["duration"] == rec.duration
    assert 90 * 0.02 <= rec.duration
    assert share(data[-4000:, 0], CALLER_HZ, rate) > 0.9
    assert rec.file_size == (tmp_path / "a.wav").stat().st_size
    assert src.media_sinks == []  # stop() drops the route


async def test_mp3_at_16k_is_written_with_libmp3lame(tmp_path):
    ticker = Ticker()
    rec = Recorder(path=tmp_path / "a.mp3", format="mp3", sample_rate=16000)
    src = FakeCall(PCM16_16K)
    src.send_media_to(rec)
    tone = Tone(OTHER_HZ, PCM16_16K)
    ticker.actions.append(lambda: src.push(tone.frame().data))
    try:
        await ticker.wait(100)
        rec.stop()
        await rec.wait_stopped(10)
    finally:
        ticker.close()
    assert (tmp_path / "a.mp3").read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    data, rate = read_mp3(tmp_path / "a.mp3")
    assert rate == 16000 and data.shape[1] == 1
    assert abs(len(data) - rec.duration * 16000) <= 1152  # within one MP3 frame
    assert share(data[-8000:, 0], OTHER_HZ, rate) > 0.9


async def test_silence_when_nothing_arrives_and_mute(tmp_path):
    ticker = Ticker()
    rec = Recorder(path=tmp_path / "s.wav")
    src = FakeCall(PCMU_8K)
    src.send_media_to(rec)
    tone = Tone(CALLER_HZ)
    try:
        await ticker.wait(25)  # nothing sent yet: silence
        ticker.actions.append(lambda: src.push(tone.frame().data))
        await ticker.wait(25)
        rec.mute(True)
        await ticker.wait(25)
        rec.stop()
        await rec.wait_stopped(10)
    finally:
        ticker.close()
    data, _ = read_wav(tmp_path / "s.wav")
    x = np.abs(data[:, 0])
    frames = x[: len(x) // 160 * 160].reshape(-1, 160).max(axis=1)
    loud = np.flatnonzero(frames > 1000)
    assert len(loud) >= 20
    assert loud[0] >= 20 and frames[-20:].max() == 0  # silence before and when muted


async def test_paced_burst_is_written_at_real_time_not_dropped(tmp_path):
    ticker = Ticker()
    rec = Recorder(path=tmp_path / "b.wav")
    tone = Tone(CALLER_HZ, PCM16_16K)
    burst = b"".join(tone.frame().data for _ in range(50))  # 1 s arriving at once
    src = FakeCall(PCM16_16K)
    src.send_media_to(rec)
    try:
        await ticker.wait(2)
        src.push(burst)
        await ticker.wait(60)
        rec.stop()
        await rec.wait_stopped(10)
    finally:
        ticker.close()
    data, _ = read_wav(tmp_path / "b.wav")
    frames = np.abs(data[: len(data) // 160 * 160, 0]).reshape(-1, 160).max(axis=1)
    assert 48 <= int((frames > 1000).sum()) <= 50  # the whole second, paced out


async def test_writes_run_off_the_event_loop(tmp_path, monkeypatch):
    threads: set[int] = set()
    real = recorder_mod._WavEncoder.write

    def write(self: Any, pcm: bytes) -> None:
        threads.add(threading.get_ident())
        real(self, pcm)

    monkeypatch.setattr(recorder_mod._WavEncoder, "write", write)
    ticker = Ticker()
    rec = Recorder(path=tmp_path / "t.wav")
    try:
        await ticker.wait(recorder_mod.FLUSH_FRAMES * 2 + 5)
        rec.stop()
        await rec.wait_stopped(10)
    finally:
        ticker.close()
    assert threads and threading.get_ident() not in threads


async def test_bad_parameters_and_unwritable_path(tmp_path):
    with pytest.raises(ValueError, match="format"):
        Recorder(path=tmp_path / "x.ogg", format="ogg")
    with pytest.raises(ValueError, match="rate"):
        Recorder(path=tmp_path / "x.wav", sample_rate=11025)
    with pytest.raises(ValueError, match="unknown recorder parameters"):
        create_recorder({"nme": "typo"})
    with pytest.raises(RecorderError, match="VGW_RECORDINGS_DIR"):
        create_recorder({"name": "x", "expire": "THREEMONTHS"})  # no session, no dir
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    rec = Recorder(path=blocker / "x.wav")
    seen = events_of(rec, RecorderEvents.Started, RecorderEvents.RecorderError)
    await rec.wait_stopped(10)
    assert [n for n, _ in seen] == [RecorderEvents.RecorderError]
    assert "cannot open" in seen[0][1]["error"] and not rec.active


# -- call.record -----------------------------------------------------------------------


async def record_call(runtime: Runtime, ticks: int, **kwargs: Any) -> tuple[Any, Any, list]:
    """Record a call for ``ticks`` ticks: the caller sends CALLER_HZ, the other side
    (a unit sent to the call) OTHER_HZ. Returns (call, recorder, call events)."""
    session = await new_session(runtime)
    call = await connected_call(session)
    seen = events_of(call, CallEvents.RecordStarted, CallEvents.RecordStopped,
                     CallEvents.RecordError, CallEvents.Disconnected)
    other = FakeCall(PCMU_8K)
    other.send_media_to(call)
    caller, callee = Tone(CALLER_HZ), Tone(OTHER_HZ)
    ticker = Ticker()
    ticker.actions += [lambda: call.leg_audio(caller.frame()),
                       lambda: other.push(callee.frame().data)]
    try:
        rec = call.record(**kwargs)
        await ticker.wait(ticks)
        call.stop_recording()
        await rec.wait_stopped(10)
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        ticker.close()
    return call, rec, seen


async def test_stereo_puts_the_caller_left_and_the_other_side_right(runtime):
    call, rec, seen = await record_call(runtime, 100, stereo=True)
    assert [n for n, _ in seen] == [CallEvents.RecordStarted, CallEvents.RecordStopped]
    url = f"http://gw.test:8080/records/{rec.id()}"
    assert seen[0][1]["url"] == url and seen[1][1]["url"] == url
    assert seen[1][1]["duration"] == rec.duration and rec.duration >= 1.8
    path = runtime.recordings_dir / "7" / call._session.id / f"{rec.id()}.wav"
    assert rec.path == path
    data, rate = read_wav(path)
    assert rate == 8000 and data.shape[1] == 2
    assert len(data) == round(rec.duration * 8000)
    left, right = data[-8000:, 0], data[-8000:, 1]
    assert share(left, CALLER_HZ, rate) > 0.9 and share(left, OTHER_HZ, rate) < 0.01
    assert share(right, OTHER_HZ, rate) > 0.9 and share(right, CALLER_HZ, rate) < 0.01
    (stored,) = runtime.store.recordings
    assert (stored.record_key, stored.call_id, stored.session_id, stored.account_id) == (
        rec.id(), call.id(), call._session.id, 7)
    assert stored.path == f"7/{call._session.id}/{rec.id()}.wav"
    assert (stored.format, stored.channels, stored.sample_rate) == ("wav", 2, 8000)
    assert stored.duration == rec.duration and stored.file_size == path.stat().st_size
    assert rec.record is stored and stored.record_id == 1
    assert not [u for u in call.media_sinks if isinstance(u, RecorderTap)]


async def test_mono_mixes_both_sides_and_mp3_works(runtime):
    _call, rec, seen = await record_call(runtime, 100, format="mp3")
    assert [n for n, _ in seen] == [CallEvents.RecordStarted, CallEvents.RecordStopped]
    data, rate = read_mp3(rec.path)
    assert rate == 8000 and data.shape[1] == 1
    tail = data[-8000:, 0]
    assert share(tail, CALLER_HZ, rate) > 0.3 and share(tail, OTHER_HZ, rate) > 0.3
    assert runtime.store.recordings[0].format == "mp3"


async def test_recording_stops_when_the_call_ends(runtime):
    session = await new_session(runtime)
    call = await connected_call(session)
    seen = events_of(call, CallEvents.RecordStarted, CallEvents.RecordStopped,
                     CallEvents.Disconnected)
    ticker = Ticker()
    try:
        rec = call.record({"stereo": True, "name": "support line"})
        assert call.record() is rec  # a second record() while it runs: the same recorder
        await ticker.wait(20)
        call._leg.listener.leg_disconnected({}, by_remote=True)
        await rec.wait_stopped(10)
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        ticker.close()
    assert [n for n, _ in seen] == [CallEvents.RecordStarted, CallEvents.Disconnected,
                                    CallEvents.RecordStopped]
    assert not rec.active
    assert runtime.store.recordings[0].record_name == "support line"
    with pytest.raises(RuntimeError):
        call.record()


async def test_barge_in_drops_the_unplayed_side_from_the_recording(runtime):
    session = await new_session(runtime)
    call = await connected_call(session)
    ticker = Ticker()
    try:
        rec = call.record(stereo=True)
        await ticker.wait(2)
        ai = FakeCall(PCM16_16K)
        ai.send_media_to(call)
        tone = Tone(OTHER_HZ, PCM16_16K)
        ai.push(b"".join(tone.frame().data for _ in range(150)))  # a 3 s answer at once
        await ticker.wait(25)
        call.clear_media_buffer()  # the caller barged in: the rest is never played
        await ticker.wait(50)
        call.stop_recording()
        await rec.wait_stopped(10)
    finally:
        ticker.close()
    data, _ = read_wav(rec.path)
    frames = np.abs(data[: len(data) // 160 * 160, 1]).reshape(-1, 160).max(axis=1)
    voiced = int((frames > 1000).sum())
    assert 20 <= voiced <= 30, voiced  # ~25 frames played, not 150


async def test_create_recorder_in_a_scenario_closes_with_the_session(runtime):
    script = (
        "from gateway.runtime.recorder import RecorderEvents\n"
        "log = []\n"
        "rec = VoxEngine.create_recorder({'name': 'room'}, format='wav')\n"
        "rec.add_event_listener(RecorderEvents.Started, lambda e: log.append(('started', e.url)))\n"
        "rec.add_event_listener(RecorderEvents.Stopped,\n"
        "                       lambda e: log.append(('stopped', e.duration)))\n"
    )
    session = await new_session(runtime, script)
    ns = session.namespace
    ticker = Ticker()
    try:
        await ticker.wait(10)
        session.terminate()
        await session.wait_ended(10)
    finally:
        ticker.close()
    rec = ns["rec"]
    assert ns["log"] == [("started", rec.url), ("stopped", rec.duration)]
    assert rec.url == f"http://gw.test:8080/records/{rec.id()}"
    assert runtime.store.recordings[0].record_name == "room"
    assert runtime.store.recordings[0].call_id is None
    assert rec.path.is_file()


async def test_no_recordings_dir_is_a_clear_error():
    rt = Runtime(MemoryStore(), "http://gw.test:8080")
    try:
        session = await new_session(rt)
        call = await connected_call(session)
        with pytest.raises(RecorderError, match="VGW_RECORDINGS_DIR"):
            call.record()
        with pytest.raises(RecorderError):
            session.namespace["VoxEngine"].create_recorder()
    finally:
        await rt.stop()
