"""Players (gateway/runtime/player.py) on the real media clock: espeak-ng speech and
WAV/MP3/OGG files from http and local paths, decoded with PyAV, sent to a call stand-in."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import av
import numpy as np
import pytest

from gateway.media.format import PCMU_8K
from gateway.media.g711 import ulaw_to_pcm16
from gateway.runtime.player import (
    MAX_PLAYERS_PER_SESSION,
    URL_FORMAT,
    Player,
    PlayerError,
    PlayerEvents,
    tts_source,
    url_source,
)
from gateway.speech import EspeakTTS
from tests.audio import SOUNDS, best_alignment, speech
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_http_backend import FakeHttpBackend
from tests.peers import require_binary, require_files


class Events:
    def __init__(self, player: Player) -> None:
        self.names: list[str] = []
        self.items: list[Any] = []
        self.changed = asyncio.Event()
        for name in vars(PlayerEvents).values():
            if isinstance(name, str) and name.startswith("PlayerEvents."):
                player.add_event_listener(name, self._on)

    def _on(self, ev: Any) -> None:
        self.names.append(ev.name.split(".", 1)[1])
        self.items.append(ev)
        self.changed.set()

    async def wait(self, name: str, timeout: float = 15) -> Any:
        async with asyncio.timeout(timeout):
            while name not in self.names:
                self.changed.clear()
                await self.changed.wait()
        return self.items[self.names.index(name)]


def encode(pcm8k: bytes, fmt: str, codec: str, rate: int) -> bytes:
    """``pcm8k`` as a ``fmt`` file (PyAV encoder; resampled to ``rate``)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm8k, "<i2").reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = 8000
        res = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for f in [*res.resample(frame), *res.resample(None)]:
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


class FileServer(FakeHttpBackend):
    """The fake web backend plus ``/files/<name>`` from :attr:`files`."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}

    async def _answer(self, req: dict) -> tuple[int, list[str], bytes]:
        if req["path"].startswith("/files/"):
            name = req["path"].rsplit("/", 1)[1]
            if name in self.files:
                return 200, ["Content-Type: application/octet-stream"], self.files[name]
        return await super()._answer(req)


def heard(call: FakeCall) -> np.ndarray:
    return np.frombuffer(ulaw_to_pcm16(bytes(call.received)), "<i2").astype(np.float64)


async def test_tts_player_speaks_with_markers_pause_and_events() -> None:
    require_binary("espeak-ng")
    call = FakeCall(PCMU_8K)
    player = Player(tts_source(EspeakTTS(), "Hello, this is a player test."),
                    EspeakTTS.output_format)
    ev = Events(player)
    player.add_marker(300)
    player.add_marker(-200)
    player.send_media_to(call)
    await ev.wait("Started")
    player.pause()
    await asyncio.sleep(0.1)
    size = len(call.received)
    await asyncio.sleep(0.2)
    assert len(call.received) == size  # paused: nothing sent
    player.resume()
    await ev.wait("PlaybackFinished")
    assert ev.names[0] == "Started" or "PlaybackReady" in ev.names[:2]
    assert ev.names.index("Started") < ev.names.index("PlaybackFinished")
    marks = [e.offset for e in ev.items if e.name == PlayerEvents.PlaybackMarkerReached]
    assert marks == [300, -200]
    assert ev.items[-1].name == PlayerEvents.PlaybackFinished
    assert getattr(ev.items[-1], "error", None) is None
    audio = heard(call)
    assert abs(len(audio) / 8000 - player.duration_ms / 1000) < 0.05  # every frame, once
    assert np.sqrt(np.mean(audio ** 2)) > 500
    assert not player.active and player.media_sinks == []


async def test_stop_and_loop() -> None:
    require_binary("espeak-ng")
    call = FakeCall(PCMU_8K)
    player = Player(tts_source(EspeakTTS(), "Looping."), EspeakTTS.output_format, loop=True)
    ev = Events(player)
    player.send_media_to(call)
    await ev.wait("PlaybackReady")
    while player.position_ms < 200 or len(call.received) < 2 * 8 * (player.duration_ms or 1):
        await asyncio.sleep(0.05)  # played past the end: it went round again
    assert "PlaybackFinished" not in ev.names
    player.stop()
    assert ev.names[-1] == "Stopped"
    size = len(call.received)
    await asyncio.sleep(0.1)
    assert len(call.received) == size


@pytest.mark.parametrize("kind", ["wav", "mp3", "ogg"])
async def test_url_player_plays_files_over_http(kind, tmp_path) -> None:
    require_files("/usr/share/asterisk/sounds/en/hello-world.wav", "asterisk-core-sounds-en-wav")
    ref = speech("hello-world")
    if kind == "wav":
        data = (SOUNDS / "hello-world.wav").read_bytes()
    elif kind == "mp3":
        data = encode(ref, "mp3", "libmp3lame", 16000)
    else:
        data = encode(ref, "ogg", "libopus", 48000)
    async with FileServer() as web:
        web.files[f"hello.{kind}"] = data
        call = FakeCall(PCMU_8K)
        player = Player(url_source(web.url(f"/files/hello.{kind}")), URL_FORMAT)
        ev = Events(player)
        player.send_media_to(call)
        await ev.wait("PlaybackFinished")
    got = heard(call)
    want = np.frombuffer(ref, "<i2").astype(np.float64)
    _lag, r = best_alignment(want, got)
    assert r >= 0.9, f"{kind}: r={r:.3f}"


async def test_url_player_errors_are_precise(tmp_path) -> None:
    async def error_of(source: Any) -> str:
        player = Player(source, URL_FORMAT)
        ev = Events(player)
        finished = await ev.wait("PlaybackFinished")
        err = await ev.wait("Error")
        assert finished.error == err.error and not player.active
        return err.error

    (tmp_path / "junk.mp3").write_bytes(b"this is not audio" * 100)
    async with FileServer() as web:
        web.files["big.wav"] = b"RIFF" + bytes(5000)
        assert "HTTP 404" in await error_of(url_source(web.url("/files/missing.wav")))
        assert "limit" in await error_of(url_source(web.url("/files/big.wav"), max_bytes=1000))
        assert "longer than" in await error_of(url_source(web.url("/hold"), timeout_s=0.3))
        web.release()
    assert "cannot decode" in await error_of(url_source(str(tmp_path / "junk.mp3")))
    assert "no such file" in await error_of(url_source(str(tmp_path / "nope.wav")))


async def test_player_limit_per_session() -> None:
    class Session:
        def __init__(self) -> None:
            self.units: list[Any] = []

        def register_unit(self, unit: Any) -> None:
            self.units.append(unit)

        def handler_failed(self, exc: BaseException, where: str) -> None:
            raise AssertionError(where) from exc

    async def endless():
        while True:
            yield bytes(640)
            await asyncio.sleep(0.01)

    session = Session()
    players = [Player(endless, URL_FORMAT, owner=session)
               for _ in range(MAX_PLAYERS_PER_SESSION)]
    with pytest.raises(PlayerError, match="10 players per session"):
        Player(endless, URL_FORMAT, owner=session)
    players[0].stop()
    extra = Player(endless, URL_FORMAT, owner=session)  # a stopped one frees a place
    for p in [*players, extra]:
        await p.close()
