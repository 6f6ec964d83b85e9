"""Call recording through a real SIP leg (baresip): a scenario answers, records the call in
stereo (``call.record(stereo=True)``) and plays a known recording to the caller
(``call.start_playback``) while baresip sends a different one. After the hang-up the
record is listed by ``GetCallHistory(with_records=true)`` and downloaded from
``GET /records/{id}`` with the account's credentials (401 without); by cross-correlation
its left channel is what baresip sent and its right channel what was played."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from gateway.server import Gateway
from tests.audio import SOUNDS, best_alignment, pcm, speech, write_wav
from tests.e2e.baresip import Baresip
from tests.e2e.conftest import API_KEY, E2E, make_settings
from tests.e2e.helpers import wait_until
from tests.e2e.test_cascade_e2e import silence
from tests.peers import require_files

AUTH = {"account_id": "1", "api_key": API_KEY}

SCENARIO = '''
state = {{"events": []}}
WAV = {wav!r}
FORMAT = {fmt!r}

def on_call_alerting(e):
    call = e.call

    def on_connected(ev):
        call.record(stereo=True, format=FORMAT)
        call.start_playback(WAV)

    call.add_event_listener(CallEvents.Connected, on_connected)
    call.add_event_listener(CallEvents.RecordStarted,
                            lambda ev: state["events"].append(("started", ev.url)))
    call.add_event_listener(CallEvents.RecordStopped,
                            lambda ev: state["events"].append(("stopped", ev.url, ev.duration)))
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.answer()

VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call_alerting)
'''


@pytest.fixture
async def gw(tmp_path) -> AsyncIterator[E2E]:
    """A gateway whose recordings go to a temp dir (VGW_RECORDINGS_DIR)."""
    gateway = Gateway(make_settings(tmp_path, recordings_dir=str(tmp_path / "recordings")))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.settings.http_base_url(),
                                     timeout=10) as http:
            yield E2E(gateway, None, http, tmp_path)  # type: ignore[arg-type]
    finally:
        await gateway.stop()


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    """(frames x channels) samples and the rate of a WAV or MP3 file's bytes."""
    if fmt == "wav":
        with wave.open(io.BytesIO(data), "rb") as w:
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
            return x.reshape(-1, w.getnchannels()), w.getframerate()
    import av

    with av.open(io.BytesIO(data)) as c:
        rate = c.streams.audio[0].codec_context.sample_rate
        x = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1).T
    x = x.astype(np.float64)
    return (x * 32768 if np.abs(x).max() <= 1.5 else x), rate


async def record_a_call(gw: E2E, tmp_path: Path, fmt: str) -> tuple[dict, bytes, np.ndarray,
                                                                     np.ndarray]:
    """Run the call; returns (history record, downloaded file, sent speech, played speech)."""
    played_wav = require_files(str(SOUNDS / "hello-world.wav"),
                               "asterisk-core-sounds-en-wav")[0]
    await gw.rule_with("agent", SCENARIO.format(wav=played_wav, fmt=fmt), name="rec")
    sent = speech("agent-pass")
    source = tmp_path / "caller.wav"
    write_wav(source, silence(500) + sent + silence(1000))
    bs = Baresip(tmp_path, source)
    try:
        await bs.dial(f"sip:agent@127.0.0.1:{gw.sip_port}", timeout_s=30)
        await wait_until(lambda: gw.gw.runtime.recent, 40, "the session to end")
    finally:
        await bs.stop()
    session = gw.gw.runtime.recent[-1]
    events = session.namespace["state"]["events"]
    log = "\n".join(session.log_lines)
    assert [e[0] for e in events] == ["started", "stopped"], (events, log)
    url = events[0][1]
    assert events[1][1] == url and url.startswith(gw.gw.settings.http_base_url() + "/records/")

    history = await gw.ok("GetCallHistory", with_records="true", with_calls="true",
                          call_session_history_id=session.record.call_session_history_id)
    (item,) = history["result"]
    (record,) = item["records"]
    assert record["record_url"] == url
    assert record["call_id"] == item["calls"][0]["call_id"]
    assert record["duration_ms"] == round(events[1][2] * 1000)

    path = url.removeprefix(gw.gw.settings.http_base_url())
    assert (await gw.http.get(path)).status_code == 401
    assert (await gw.http.get(path, params={**AUTH, "api_key": "nope"})).status_code == 401
    by_key = await gw.http.get(path, params=AUTH)
    by_id = await gw.http.get(f"/records/{record['record_id']}", params=AUTH)
    assert by_key.status_code == by_id.status_code == 200, by_key.text
    assert by_key.content == by_id.content
    assert by_key.headers["content-type"] == ("audio/wav" if fmt == "wav" else "audio/mpeg")
    assert record["file_size"] == len(by_key.content)
    return record, by_key.content, pcm(sent, "pcm16"), pcm(speech("hello-world"), "pcm16")


async def test_stereo_wav_recording_of_a_baresip_call(gw, tmp_path):
    record, data, sent, played = await record_a_call(gw, tmp_path, "wav")
    x, rate = decode(data, "wav")
    assert rate == 8000 and x.shape[1] == 2
    assert record["duration_ms"] == round(len(x) / rate * 1000)
    left, right = x[:, 0], x[:, 1]
    lag_l, r_left = best_alignment(sent, left)
    lag_r, r_right = best_alignment(played, right)
    _, cross_l = best_alignment(played, left)
    _, cross_r = best_alignment(sent, right)
    print(f"left: sent r={r_left:.3f} at {lag_l / rate:.2f} s (played r={cross_l:.3f}); "
          f"right: played r={r_right:.3f} at {lag_r / rate:.2f} s (sent r={cross_r:.3f})")
    assert r_left >= 0.9, "the left channel is not what the caller sent"
    assert r_right >= 0.9, "the right channel is not what was played to the caller"
    assert cross_l < 0.5 and cross_r < 0.5, "the channels are mixed"


async def test_stereo_mp3_recording_of_a_baresip_call(gw, tmp_path):
    record, data, sent, played = await record_a_call(gw, tmp_path, "mp3")
    x, rate = decode(data, "mp3")
    assert rate == 8000 and x.shape[1] == 2
    assert abs(record["duration_ms"] - len(x) / rate * 1000) <= 1152 / rate * 1000
    _, r_left = best_alignment(sent, x[:, 0])
    _, r_right = best_alignment(played, x[:, 1])
    _, cross_l = best_alignment(played, x[:, 0])
    print(f"mp3: left r={r_left:.3f}, right r={r_right:.3f}, played on the left r={cross_l:.3f}")
    assert r_left >= 0.7 and r_right >= 0.7
    assert cross_l < 0.5
