"""Conferences (gateway/runtime/conference.py) on the real media clock with call stand-ins:
mix-minus by spectrum, PCMU 8 kHz participants in 8 and 16 kHz conferences, endpoints
added and removed while it runs, directions, events, jitter, and a session's conference
created by scenario code through ``VoxEngine.create_conference``."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from gateway.media.clock import get_media_clock
from gateway.media.format import PCM16_16K, PCMU_8K, AudioFormat, AudioFrame
from gateway.media.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from gateway.runtime.conference import (
    BOTH,
    MAX_ENDPOINTS,
    RECEIVE,
    SEND,
    Conference,
    ConferenceError,
    ConferenceEvents,
    Endpoint,
    create_conference,
)
from gateway.runtime.manager import Runtime
from gateway.runtime.records import RuleMatch, ScenarioSource
from gateway.runtime.session import SessionEndedError
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_leg import FakeLeg
from tests.fakes.memory_store import MemoryStore

#: Three tones whose harmonics and intermodulation products up to order 7 (G.711 is a
#: nonlinearity) stay 100 Hz or more away from the third: no false "hears itself".
FREQS = (500.0, 1240.0, 2360.0)


class Tone:
    """A phase-continuous sine in 20 ms frames of ``fmt`` (PCMU or PCM16)."""

    def __init__(self, freq: float, fmt: AudioFormat = PCMU_8K, amp: float = 6000.0) -> None:
        self.freq, self.fmt, self.amp = freq, fmt, amp
        self.n = 0

    def frame(self) -> bytes:
        count = self.fmt.frame_samples()
        t = (self.n + np.arange(count)) / self.fmt.sample_rate
        self.n += count
        pcm = np.round(self.amp * np.sin(2 * np.pi * self.freq * t)).astype("<i2").tobytes()
        return pcm16_to_ulaw(pcm) if self.fmt == PCMU_8K else pcm


class Feeder:
    """Pushes one frame of each call's tone per media clock tick (as a call leg would)."""

    def __init__(self) -> None:
        self.sources: dict[FakeCall, Tone] = {}
        self.ticks = 0
        self._clock = get_media_clock()
        self._handle = self._clock.subscribe(self._tick)
        self._changed = asyncio.Event()

    def _tick(self) -> None:
        for call, tone in list(self.sources.items()):
            call.push(tone.frame())
        self.ticks += 1
        self._changed.set()

    async def wait(self, ticks: int, timeout: float = 10.0) -> None:
        """Wait until ``ticks`` more ticks have run."""
        target = self.ticks + ticks
        async with asyncio.timeout(timeout):
            while self.ticks < target:
                self._changed.clear()
                await self._changed.wait()

    def close(self) -> None:
        self._clock.unsubscribe(self._handle)


@pytest.fixture
async def feeder():
    f = Feeder()
    yield f
    f.close()


class Events:
    """Every ConferenceEvents event of one conference, in order."""

    def __init__(self, conf: Conference) -> None:
        self.items: list[Any] = []
        for name in vars(ConferenceEvents).values():
            if isinstance(name, str) and name.startswith("ConferenceEvents."):
                conf.add_event_listener(name, self.items.append)

    @property
    def names(self) -> list[str]:
        return [e.name.split(".", 1)[1] for e in self.items]

    def of(self, name: str) -> list[Any]:
        return [e for e in self.items if e.name == f"ConferenceEvents.{name}"]


def heard(call: FakeCall, start_byte: int = 0, end_byte: int | None = None) -> np.ndarray:
    """Samples (8 kHz) a PCMU FakeCall received in ``[start_byte, end_byte)``."""
    data = bytes(call.received[start_byte:end_byte])
    return np.frombuffer(ulaw_to_pcm16(data), dtype="<i2").astype(np.float64)


def band_energy(x: np.ndarray, rate: int, freq: float, width: float = 40.0) -> float:
    """Spectral energy of ``x`` within ``freq`` +- ``width`` Hz (Hann window)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / rate)
    return float(spec[(f > freq - width) & (f < freq + width)].sum())


def tones_in(x: np.ndarray, rate: int = 8000) -> dict[float, float]:
    """Share of the signal's energy in each test tone's band (0..1)."""
    total = float((np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2).sum()) or 1.0
    return {f: band_energy(x, rate, f) / total for f in FREQS}


def assert_hears(x: np.ndarray, present: set[float], rate: int = 8000) -> None:
    """``x`` carries each tone of ``present`` clearly and the other test tones not at all."""
    share = tones_in(x, rate)
    for f in FREQS:
        if f in present:
            assert share[f] > 0.8 / len(present) * 0.5, (f, share)
        else:
            assert share[f] < 1e-3, (f, share)


def join(conf: Conference, call: FakeCall) -> None:
    """What ``VoxEngine.send_media_between(call, conf)`` does."""
    call.send_media_to(conf)
    conf.send_media_to(call)


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_three_participants_each_hear_the_other_two_and_not_themselves(feeder, rate):
    conf = Conference(sample_rate=rate)
    events = Events(conf)
    calls = [FakeCall(PCMU_8K) for _ in FREQS]
    for call in calls:
        join(conf, call)
    for call, f in zip(calls, FREQS, strict=True):
        feeder.sources[call] = Tone(f)
    await feeder.wait(60)
    await asyncio.sleep(0)
    # Started at creation, then one EndpointAdded per call, each already BOTH
    assert events.names[:4] == ["Started", "EndpointAdded", "EndpointAdded", "EndpointAdded"]
    added = events.of("EndpointAdded")
    assert [e.call for e in added] == calls
    assert all(e.direction == BOTH and e.mode == "MIX" and e.conference is conf for e in added)
    assert [e.endpointId for e in added] == [ep.id() for ep in conf.get_list()]
    assert all(e.endpoint_id == e.endpointId for e in added)
    for call, f in zip(calls, FREQS, strict=True):
        frames = len(call.received) // 160
        assert frames >= 50, frames
        x = heard(call, (frames - 40) * 160, frames * 160)  # the last 800 ms
        assert_hears(x, set(FREQS) - {f})
    for ep in conf.get_list():
        assert ep.get_direction() == BOTH and ep.get_mode() == "MIX"
        assert ep.dropped_frames == 0
    conf.stop()


async def test_endpoints_added_and_removed_while_running(feeder):
    conf = Conference(sample_rate=16000)
    events = Events(conf)
    a, b, c = (FakeCall(PCMU_8K) for _ in range(3))
    for call, f in zip((a, b, c), FREQS, strict=True):
        feeder.sources[call] = Tone(f)
    join(conf, a)
    join(conf, b)
    await feeder.wait(30)
    mark1 = len(a.received)
    ep_c = conf.add(call=c)  # joins while the conference runs
    assert isinstance(ep_c, Endpoint) and ep_c.get_direction() == BOTH
    await feeder.wait(30)
    mark2 = len(a.received)
    b_before = len(b.received)
    conf.remove(b)
    await feeder.wait(30)
    mark3 = len(a.received)
    await asyncio.sleep(0)

    margin = 5 * 160  # a few frames of queue, cushion and resampler delay at each change
    assert_hears(heard(a, margin, mark1), {FREQS[1]})  # a + b
    assert_hears(heard(a, mark1 + margin, mark2), {FREQS[1], FREQS[2]})  # a + b + c
    assert_hears(heard(a, mark2 + margin, mark3), {FREQS[2]})  # a + c
    assert len(b.received) <= b_before + 160  # b hears nothing once removed
    assert not b.media_sinks and b.media_source is None
    assert conf.endpoint_of(b) is None and len(conf.get_list()) == 2
    assert events.names == ["Started", "EndpointAdded", "EndpointAdded", "EndpointAdded",
                            "EndpointRemoved"]
    removed = events.of("EndpointRemoved")[0]
    assert removed.call is b and removed.direction == BOTH and not removed.endpoint.active
    conf.remove(b)  # unknown members are ignored
    conf.stop()


async def test_directions_full_mix_and_updates(feeder):
    conf = Conference(sample_rate=8000)
    events = Events(conf)
    a, b = FakeCall(PCMU_8K), FakeCall(PCMU_8K)
    listener = FakeCall(PCMU_8K)  # not a participant: hears the full mix
    feeder.sources[a] = Tone(FREQS[0])
    feeder.sources[b] = Tone(FREQS[1])
    ep_a = conf.add({"call": a, "direction": "SEND", "displayName": "alice"})
    assert ep_a.get_direction() == SEND and ep_a.display_name == "alice"
    join(conf, b)
    conf.send_media_to(listener)
    assert conf.endpoint_of(listener).get_direction() == RECEIVE
    assert conf.media_sinks == [b, listener] and conf.media_source is None
    await feeder.wait(40)
    assert len(a.received) == 0  # SEND only: a hears nothing
    assert_hears(heard(b, 10 * 160), {FREQS[0]})
    assert_hears(heard(listener, 10 * 160), {FREQS[0], FREQS[1]})

    await asyncio.sleep(0)
    assert events.of("EndpointAdded")[0].direction == SEND
    assert events.of("EndpointAdded")[2].direction == RECEIVE
    assert conf.add(call=a, direction=BOTH) is ep_a  # same endpoint, new direction
    await asyncio.sleep(0)
    updated = events.of("EndpointUpdated")
    assert len(updated) == 1 and updated[0].direction == BOTH and updated[0].endpoint is ep_a
    await feeder.wait(30)
    assert_hears(heard(a, 10 * 160), {FREQS[1]})

    # RECEIVE only: a's tone leaves the mix, a still hears b
    conf.add(call=a, direction=RECEIVE)
    mark_b, mark_l = len(b.received), len(listener.received)
    await feeder.wait(30)
    assert_hears(heard(listener, mark_l + 5 * 160), {FREQS[1]})
    assert np.abs(heard(b, mark_b + 5 * 160)).max() == 0  # nobody else talks to b

    # stop_media_to / stop_media_between take a unit out of the conference
    conf.stop_media_to(b)
    assert conf.endpoint_of(b) is None
    b.stop_media_to(conf)  # the unit's route goes to its endpoint: nothing left to stop
    await asyncio.sleep(0)
    assert events.of("EndpointRemoved")[-1].call is b

    assert conf.get(ep_a.id()) is ep_a and conf.get("nope") is None
    with pytest.raises(ValueError, match="direction"):
        conf.add(call=a, direction="SIDEWAYS")
    with pytest.raises(ValueError, match="FORWARD"):
        conf.add(call=a, mode="FORWARD")
    with pytest.raises(ValueError, match="unknown"):
        conf.add({"call": a, "colour": "red"})
    with pytest.raises(ValueError):
        conf.add(call=conf)
    conf.stop()


async def test_endpoint_without_directions_is_removed(feeder):
    """A participant whose unit ends (its routes dropped, as Call._end does) leaves."""
    conf = Conference()
    events = Events(conf)
    a, b = FakeCall(PCMU_8K), FakeCall(PCMU_8K)
    join(conf, a)
    join(conf, b)
    a.stop_all_media()
    await asyncio.sleep(0)
    assert events.names == ["Started", "EndpointAdded", "EndpointAdded", "EndpointRemoved"]
    assert events.of("EndpointRemoved")[0].call is a
    assert [ep.get_call() for ep in conf.get_list()] == [b]
    # a unit that listens to something else and sends nothing leaves too
    conf.add(call=b, direction=RECEIVE)
    other = FakeCall(PCMU_8K)
    other.send_media_to(b)  # replaces the endpoint as b's source
    await asyncio.sleep(0)
    assert conf.get_list() == []
    assert conf.ticks >= 0 and conf._tick_handle is None  # no endpoints: off the clock
    conf.stop()


async def test_stop_removes_everyone_then_fires_stopped_and_refuses_new_members(feeder):
    conf = Conference()
    events = Events(conf)
    a, b = FakeCall(PCMU_8K), FakeCall(PCMU_8K)
    join(conf, a)
    join(conf, b)
    feeder.sources[a] = Tone(FREQS[0])
    await feeder.wait(5)
    conf.stop()
    conf.stop()  # idempotent
    await asyncio.sleep(0)
    assert events.names == ["Started", "EndpointAdded", "EndpointAdded", "EndpointRemoved",
                            "EndpointRemoved", "Stopped"]
    stopped = events.of("Stopped")[0]
    assert stopped.conference is conf and stopped.duration >= 0 and stopped.cost == 0
    assert not conf.active and not a.media_sinks and a.media_source is None
    with pytest.raises(ConferenceError):
        conf.add(call=a)
    with pytest.raises(ConferenceError):
        a.send_media_to(conf)
    assert not a.media_sinks and conf._source is None  # no half-made route left
    got = len(b.received)
    await feeder.wait(5)
    assert len(b.received) == got


async def test_jittery_input_is_smoothed_and_bursts_are_capped(feeder):
    conf = Conference(sample_rate=8000)
    a, b = FakeCall(PCMU_8K), FakeCall(PCMU_8K)
    join(conf, a)
    join(conf, b)
    tone = Tone(FREQS[0])
    odd = [True]

    def bursty() -> None:  # two frames every other tick (a jittery network source)
        if odd[0]:
            a.push(tone.frame())
            a.push(tone.frame())
        odd[0] = not odd[0]

    clock = get_media_clock()
    handle = clock.subscribe(bursty)
    try:
        await feeder.wait(60)
    finally:
        clock.unsubscribe(handle)
    ep_a = conf.endpoint_of(a)
    assert ep_a.underruns <= 2 and ep_a.dropped_frames == 0
    x = heard(b, 10 * 160)
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    assert (np.abs(frames).max(axis=1) > 1000).all()  # no silent gaps in what b hears
    # a burst beyond the queue is cut to the newest 3 frames (bounded latency)
    for _ in range(10):
        a.push(tone.frame())
    assert ep_a.dropped_frames >= 7
    conf.stop()


async def test_pcm16_participant_and_endpoint_limit():
    conf = Conference(sample_rate=16000)
    wide = FakeCall(PCM16_16K)
    narrow = FakeCall(PCMU_8K)
    join(conf, wide)
    join(conf, narrow)
    tone = Tone(FREQS[2], PCM16_16K)
    feeder = Feeder()
    feeder.sources[wide] = tone
    try:
        await feeder.wait(30)
    finally:
        feeder.close()
    assert_hears(heard(narrow, 10 * 160), {FREQS[2]})
    conf.stop()

    big = Conference()
    for _ in range(MAX_ENDPOINTS):
        big.add(call=FakeCall(PCMU_8K), direction=RECEIVE)
    with pytest.raises(ConferenceError, match="limit"):
        big.add(call=FakeCall(PCMU_8K))
    big.stop()
    with pytest.raises(ValueError):
        create_conference({"hd": True})
    assert create_conference({"hd_audio": True}).sample_rate == 48000
    assert create_conference().sample_rate == 8000
    assert create_conference(sample_rate=16000).sample_rate == 16000


SCENARIO = """
from gateway.runtime.conference import ConferenceEvents
log = []
conf = VoxEngine.create_conference({"sample_rate": 16000})
conf.add_event_listener(ConferenceEvents.Started, lambda e: log.append("started"))
conf.add_event_listener(ConferenceEvents.EndpointAdded,
                        lambda e: log.append(("added", e.call.id(), e.direction)))
conf.add_event_listener(ConferenceEvents.EndpointRemoved,
                        lambda e: log.append(("removed", e.call.id())))
conf.add_event_listener(ConferenceEvents.Stopped, lambda e: log.append("stopped"))
def join(call):
    VoxEngine.send_media_between(call, conf)
"""


async def test_scenario_conference_with_calls_and_session_end():
    store = MemoryStore()
    match = RuleMatch(1, 1, "app", 1, "rule", [ScenarioSource(1, "conf", SCENARIO)])
    rt = Runtime(store, "http://127.0.0.1:8080")
    started = await rt.start_scenarios(match, None)
    session = rt.sessions[started.session_id]
    ns = session.namespace
    conf = ns["conf"]
    a, b = session.add_call(FakeLeg()), session.add_call(FakeLeg())
    ns["join"](a)
    ns["join"](b)
    tone = Tone(FREQS[0])
    clock = get_media_clock()
    handle = clock.subscribe(lambda: a.leg_audio(AudioFrame(tone.frame(), PCMU_8K)))
    try:
        for _ in range(200):
            if len(b._leg.played) >= 30:
                break
            await asyncio.sleep(0.02)
    finally:
        clock.unsubscribe(handle)
    pcm = b"".join(f.data for f in b._leg.played[10:])
    x = np.frombuffer(ulaw_to_pcm16(pcm), dtype="<i2").astype(np.float64)
    assert_hears(x, {FREQS[0]})
    assert all(f.format == PCMU_8K for f in b._leg.played)
    assert ns["log"] == ["started", ("added", a.id(), "BOTH"), ("added", b.id(), "BOTH")]

    a._leg.listener.leg_disconnected({}, by_remote=True)  # a hangs up: it leaves
    await asyncio.sleep(0)
    assert ns["log"][-1] == ("removed", a.id())
    assert [ep.get_call() for ep in conf.get_list()] == [b]
    assert conf in session.units

    await rt.stop()  # the session ends: its conference stops with it
    assert not conf.active and conf.get_list() == []
    assert "stopped" not in ns["log"]  # closed with the session, not stop()ped
    with pytest.raises(SessionEndedError):
        ns["VoxEngine"].create_conference()


# -- named conferences: shared by the sessions of one account --------------------------------
NAMED = """
from gateway.runtime.context import current_session
from gateway.runtime.conference import ConferenceEvents
log = []
boom = {"on": False}
conf = VoxEngine.create_conference(name="room")

def on_added(e):
    log.append(("added", e.call.id(), current_session.get().id))
    if boom["on"]:
        raise RuntimeError("boom")

conf.add_event_listener(ConferenceEvents.Started, lambda e: log.append("started"))
conf.add_event_listener(ConferenceEvents.EndpointAdded, on_added)
conf.add_event_listener(ConferenceEvents.EndpointRemoved,
                        lambda e: log.append(("removed", e.call.id())))
conf.add_event_listener(ConferenceEvents.Stopped, lambda e: log.append("stopped"))
def join(call):
    VoxEngine.send_media_between(call, conf)
"""


async def _named_session(rt: Runtime, account_id: int = 1) -> Any:
    match = RuleMatch(account_id, 1, "app", 1, "rule", [ScenarioSource(1, "room", NAMED)])
    started = await rt.start_scenarios(match, None)
    return rt.sessions[started.session_id]


class Talkers:
    """Feeds each Call its tone (one PCMU frame per media clock tick), as its leg would."""

    def __init__(self, calls: dict[Any, float]) -> None:
        self.tones = {call: Tone(freq) for call, freq in calls.items()}
        self._clock = get_media_clock()
        self._handle = self._clock.subscribe(self._tick)

    def _tick(self) -> None:
        for call, tone in list(self.tones.items()):
            if call.state() != "TERMINATED":
                call.leg_audio(AudioFrame(tone.frame(), PCMU_8K))

    def close(self) -> None:
        self._clock.unsubscribe(self._handle)


async def played_after(call: Any, frames: int, skip: int = 10) -> np.ndarray:
    """The next ``frames`` frames played to ``call``'s leg after ``skip`` more (8 kHz)."""
    start = len(call._leg.played) + skip
    async with asyncio.timeout(10):
        while len(call._leg.played) < start + frames:
            await asyncio.sleep(0.02)
    pcm = b"".join(f.data for f in call._leg.played[start:start + frames])
    return np.frombuffer(ulaw_to_pcm16(pcm), dtype="<i2").astype(np.float64)


async def test_named_conference_is_shared_and_outlives_a_session_that_ends():
    rt = Runtime(MemoryStore(), "http://127.0.0.1:8080")
    s1, s2, s3 = [await _named_session(rt) for _ in range(3)]
    conf = s1.namespace["conf"]
    assert s2.namespace["conf"] is conf and s3.namespace["conf"] is conf
    assert rt.named_conference(1, "room") is conf and conf.name == "room"
    calls = [s.add_call(FakeLeg()) for s in (s1, s2, s3)]
    for s, call in zip((s1, s2, s3), calls, strict=True):
        s.namespace["join"](call)
    talk = Talkers(dict(zip(calls, FREQS, strict=True)))
    try:
        for i, call in enumerate(calls):  # each hears the other two and not itself
            assert_hears(await played_after(call, 50), set(FREQS) - {FREQS[i]})
        for s in (s1, s2, s3):
            log = s.namespace["log"]
            assert log[0] == "started" and log.count("started") == 1  # its own Started
            # every session hears every endpoint, each handler in its own session
            assert log[1:] == [("added", c.id(), s.id) for c in calls]

        s1.terminate()  # the creator ends: only its endpoint leaves
        await s1.wait_ended(5)
        assert [ep.get_call() for ep in conf.get_list()] == calls[1:]
        assert conf.active and rt.named_conference(1, "room") is conf
        for s in (s2, s3):
            assert s.namespace["log"][-1] == ("removed", calls[0].id())
        # its call hung up while it was ending (as in a session's own conference) ...
        assert s1.namespace["log"][-1] == ("removed", calls[0].id())
        ended_log = list(s1.namespace["log"])  # ... and after that it hears nothing
        assert_hears(await played_after(calls[1], 50), {FREQS[2]})  # 2 still hears 3
        assert_hears(await played_after(calls[2], 50), {FREQS[1]})

        s4 = await _named_session(rt)  # a newcomer joins the running conference
        assert s4.namespace["conf"] is conf and s4.namespace["log"] == []
        await asyncio.sleep(0)
        assert s4.namespace["log"] == ["started"]
        s4.namespace["join"](s4.add_call(FakeLeg()))
        await asyncio.sleep(0)
        assert s4.namespace["log"][-1][0] == "added" and s2.namespace["log"][-1][0] == "added"
        assert s1.namespace["log"] == ended_log
    finally:
        talk.close()
    s2.terminate()
    s3.terminate()
    await s2.wait_ended(5)
    await s3.wait_ended(5)
    assert conf.active  # s4 still holds it, with no endpoints
    await rt.stop()  # the last holder ends: the conference closes and frees its name
    assert not conf.active and conf.get_list() == [] and rt.conferences == {}
    assert all("stopped" not in s.namespace["log"] for s in (s1, s2, s3, s4))


async def test_named_conference_is_per_account_and_a_failing_handler_ends_only_its_session():
    rt = Runtime(MemoryStore(), "http://127.0.0.1:8080")
    a1, a2 = await _named_session(rt, 1), await _named_session(rt, 1)
    other = await _named_session(rt, 2)
    conf, theirs = a1.namespace["conf"], other.namespace["conf"]
    assert a2.namespace["conf"] is conf
    assert theirs is not conf  # same name, another account: another conference
    assert rt.named_conference(1, "room") is conf and rt.named_conference(2, "room") is theirs
    assert rt.named_conference(3, "room") is None

    c1, x = a1.add_call(FakeLeg()), other.add_call(FakeLeg())
    a2.namespace["boom"]["on"] = True  # a2's EndpointAdded handler raises
    a1.namespace["join"](c1)
    other.namespace["join"](x)
    talk = Talkers({c1: FREQS[0], x: FREQS[1]})
    try:
        await a2.wait_ended(5)  # its handler failed: a2 ends ...
        assert a2.record.finish_reason == "error"
        assert not a1.ended and conf.active  # ... a1 and the conference do not
        assert a1.namespace["log"][-1] == ("added", c1.id(), a1.id)
        assert all(e[1] != x.id() for e in a1.namespace["log"] if isinstance(e, tuple))
        assert [ep.get_call() for ep in theirs.get_list()] == [x]
        # account 2's caller hears nothing of account 1's (it is alone in its room)
        assert tones_in(await played_after(x, 50))[FREQS[0]] < 1e-3
        assert [ep.get_call() for ep in conf.get_list()] == [c1]
    finally:
        talk.close()
    await rt.stop()
    assert rt.conferences == {}


async def test_named_conference_stop_ends_it_for_every_session_and_frees_the_name():
    rt = Runtime(MemoryStore(), "http://127.0.0.1:8080")
    s1, s2 = await _named_session(rt), await _named_session(rt)
    conf = s1.namespace["conf"]
    s2.namespace["conf"].stop()
    await asyncio.sleep(0)
    assert not conf.active and rt.named_conference(1, "room") is None
    assert s1.namespace["log"][-1] == "stopped" and s2.namespace["log"][-1] == "stopped"
    s3 = await _named_session(rt)
    assert s3.namespace["conf"] is not conf and s3.namespace["conf"].active
    with pytest.raises(ConferenceError):
        s3.namespace["VoxEngine"].create_conference(name="room", sample_rate=16000)
    with pytest.raises(ValueError):
        s3.namespace["VoxEngine"].create_conference(name="")
    await rt.stop()
    assert rt.conferences == {}
