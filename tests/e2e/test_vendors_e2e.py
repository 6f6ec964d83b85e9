"""One generic scenario (scenarios/inbound_voice_ai.py) bridges a real baresip call to
each Voice AI vendor's fake: OpenAI Realtime, Gemini Live, ElevenLabs Agents, Deepgram
Voice Agent and Ultravox.

The rule runs two scenarios in one namespace: a per-vendor config scenario
(``VENDOR``, ``OPTIONS``, ``TOOL_HANDLERS``) and the shipped generic one. In one call
per vendor the test checks that

1. the caller's speech reaches the vendor in the format the connector's capabilities
   promise (G.711 μ-law passthrough for OpenAI, ElevenLabs ``ulaw_8000`` and Deepgram;
   16 kHz PCM for Gemini; the configured PCM rate for Ultravox) and is the recording
   baresip sends (segment_match >= 0.9 after decoding and resampling);
2. the vendor's audio (a speech recording in its output format) reaches the caller:
   baresip's dump matches it (correlation >= 0.9);
3. the vendor's interruption message clears playout: the vendor sends a 3 s answer at
   once, interrupts about a second later, and the caller hears clearly less than the
   whole answer although the call goes on well past its end;
4. a tool call round-trips: the vendor's tool call reaches the scenario's handler and
   the vendor receives its tool-result message with the handler's result.

All checks are on media (what baresip recorded) or on messages, never on wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.signal import resample_poly

from gateway.media.g711 import pcm16_to_ulaw
from tests.audio import best_alignment, pcm, read_wav, segment_match, speech, write_wav
from tests.e2e.baresip import Baresip
from tests.e2e.conftest import shipped
from tests.e2e.helpers import wait_until
from tests.fakes.fake_deepgram_agent import FakeVoiceAgentServer
from tests.fakes.fake_elevenlabs_agents import FakeAgentsServer
from tests.fakes.fake_gemini_live import FakeGeminiLiveServer
from tests.fakes.fake_ultravox import FakeUltravoxServer

RATE = 8000
KEY = "vendor-e2e-key-0123456789"
TOOL = {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
TOOL_ARGS = {"city": "Paris"}
TOOL_RESULT = {"city": "Paris", "temp_c": 21}
ANSWER_MS = 3000  # the AI's answer; it is interrupted about 1 s in
ULTRAVOX_IN, ULTRAVOX_OUT = 24000, 16000

HANDLERS = 'TOOL_HANDLERS = {"get_weather": lambda args: {"city": args["city"], "temp_c": 21}}\n'


def silence(ms: int) -> bytes:
    return bytes(RATE * 2 * ms // 1000)


def resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling (scipy, independent of the gateway's resampler)."""
    if src == dst:
        return samples
    g = np.gcd(src, dst)
    return resample_poly(samples, dst // g, src // g)


def to_pcm16(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def samples_of(data: bytes) -> np.ndarray:
    return pcm(bytes(data), "pcm16")


# -- one adapter per vendor: start its fake, configure the scenario, drive the fake ----
class Vendor:
    """How the test drives one vendor's fake."""

    name = ""

    async def start(self, stack: contextlib.AsyncExitStack, e2e: Any,
                    monkeypatch: pytest.MonkeyPatch) -> None:
        raise NotImplementedError

    def config(self) -> str:
        """The config scenario that runs before the generic one."""
        raise NotImplementedError

    async def bridged(self) -> bool:
        """True once the call's audio flows to the vendor in its final format."""
        raise NotImplementedError

    def input_format(self) -> str:
        raise NotImplementedError

    def caller_audio(self) -> np.ndarray:
        """What the vendor received from the caller, decoded to 8 kHz samples."""
        raise NotImplementedError

    def encode_answer(self, pcm8k: bytes) -> bytes:
        """``pcm8k`` in the vendor's output format."""
        raise NotImplementedError

    async def play(self, audio: bytes) -> None:
        raise NotImplementedError

    async def interrupt(self) -> None:
        raise NotImplementedError

    async def tool_round_trip(self) -> Any:
        """Issue the vendor's tool call; return the result the vendor got back (parsed)."""
        raise NotImplementedError

    def invalid(self) -> list[Any]:
        """Messages the fake found invalid (either direction)."""
        fake = self.fake  # type: ignore[attr-defined]
        return [*fake.invalid_received, *fake.invalid_sent]


class OpenAIVendor(Vendor):
    name = "openai"

    async def start(self, stack, e2e, monkeypatch):
        self.fake = e2e.fake  # the e2e fixture's fake, in script mode

    def config(self):
        return (f'VENDOR = "openai"\nOPTIONS = {{"api_key": "sk-test-e2e", '
                f'"base_url": {self.fake.base_url!r}, "instructions": "Be brief.", '
                f'"tools": [{json.dumps({"type": "function", **TOOL})}]}}\n' + HANDLERS)

    async def bridged(self):
        return (self.fake.output_format.get("type") == "audio/pcmu"
                and len(self.fake.received_audio) >= 1600)

    def input_format(self):
        return json.dumps(self.fake.input_format)

    def caller_audio(self):
        assert self.fake.input_format["type"] == "audio/pcmu", self.fake.input_format
        assert {fmt["type"] for _, fmt in self.fake.audio_chunks} == {"audio/pcmu"}
        return pcm(bytes(self.fake.received_audio), "pcmu")

    def encode_answer(self, pcm8k):
        assert self.fake.output_format["type"] == "audio/pcmu", self.fake.output_format
        return pcm16_to_ulaw(pcm8k)

    async def play(self, audio):
        await self.fake.play_audio(audio, chunk_ms=200, finish=False)

    async def interrupt(self):
        await self.fake.speech_started(audio_start_ms=1000)
        await self.fake.wait_for("conversation.item.truncate", timeout=5)

    async def tool_round_trip(self):
        call_id = await self.fake.function_call(TOOL["name"], TOOL_ARGS)
        item = await self.fake.wait_for(
            "conversation.item.create", timeout=5,
            predicate=lambda ev: ev["item"].get("type") == "function_call_output")
        assert item["item"]["call_id"] == call_id
        await self.fake.wait_for("response.create", timeout=5)
        return json.loads(item["item"]["output"])


class GeminiVendor(Vendor):
    name = "gemini"

    async def start(self, stack, e2e, monkeypatch):
        self.fake = await stack.enter_async_context(FakeGeminiLiveServer(api_key=KEY))
        monkeypatch.setenv("SSL_CERT_FILE", self.fake.ca_file)  # the SDK forces wss

    def config(self):
        return (f'VENDOR = "gemini"\nOPTIONS = {{"api_key": {KEY!r}, '
                f'"base_url": {self.fake.base_url!r}, "instructions": "Be brief.", '
                f'"tools": [{json.dumps(TOOL)}]}}\n' + HANDLERS)

    async def bridged(self):
        return len(self.fake.received_audio) >= 3200

    def input_format(self):
        return ", ".join(sorted({mime for _, mime in self.fake.audio_chunks}))

    def caller_audio(self):
        assert {mime for _, mime in self.fake.audio_chunks} == {"audio/pcm;rate=16000"}
        return resample(samples_of(self.fake.received_audio), 16000, RATE)

    def encode_answer(self, pcm8k):
        return to_pcm16(resample(samples_of(pcm8k), RATE, 24000))

    async def play(self, audio):
        await self.fake.play_audio(audio, finish=False)

    async def interrupt(self):
        await self.fake.interrupted()

    async def tool_round_trip(self):
        call_id = await self.fake.tool_call(TOOL["name"], TOOL_ARGS)
        await self.fake.wait_until(lambda: any(r.get("id") == call_id
                                               for r in self.fake.tool_responses))
        (resp,) = [r for r in self.fake.tool_responses if r.get("id") == call_id]
        assert resp["name"] == TOOL["name"]
        return resp["response"]


class ElevenLabsVendor(Vendor):
    name = "elevenlabs"

    async def start(self, stack, e2e, monkeypatch):
        monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)  # a public agent
        self.fake = await stack.enter_async_context(FakeAgentsServer(
            agent_id="agent_e2e", input_format="ulaw_8000", output_format="ulaw_8000"))

    def config(self):
        return (f'VENDOR = "elevenlabs"\nOPTIONS = {{"agent_id": "agent_e2e", '
                f'"base_url": {self.fake.base_url!r}}}\n' + HANDLERS)

    async def bridged(self):
        return len(self.fake.received_audio) >= 1600

    def input_format(self):
        return self.fake.input_format

    def caller_audio(self):
        return pcm(bytes(self.fake.received_audio), "pcmu")

    def encode_answer(self, pcm8k):
        return pcm16_to_ulaw(pcm8k)

    async def play(self, audio):
        await self.fake.play_audio(audio)

    async def interrupt(self):
        await self.fake.interruption()

    async def tool_round_trip(self):
        call_id = await self.fake.client_tool_call(TOOL["name"], TOOL_ARGS)
        msg = await self.fake.wait_for("client_tool_result")
        assert msg["tool_call_id"] == call_id and msg["is_error"] is False
        return json.loads(msg["result"])


class DeepgramVendor(Vendor):
    name = "deepgram"

    async def start(self, stack, e2e, monkeypatch):
        self.fake = await stack.enter_async_context(FakeVoiceAgentServer(api_key=KEY))

    def config(self):
        return (f'VENDOR = "deepgram"\nOPTIONS = {{"api_key": {KEY!r}, '
                f'"base_url": {self.fake.url!r}, "instructions": "Be brief.", '
                f'"functions": [{json.dumps(TOOL)}]}}\n' + HANDLERS)

    async def bridged(self):
        return self.fake.settings is not None and len(self.fake.received_audio) >= 1600

    def input_format(self):
        return json.dumps(self.fake.settings["audio"])

    def caller_audio(self):
        audio = self.fake.settings["audio"]
        assert audio["input"]["encoding"] == "mulaw", audio
        assert audio["input"]["sample_rate"] == RATE, audio
        assert self.fake.audio_before_settings == 0
        return pcm(bytes(self.fake.received_audio), "pcmu")

    def encode_answer(self, pcm8k):
        out = self.fake.settings["audio"]["output"]
        assert out["encoding"] == "mulaw" and out["sample_rate"] == RATE, out
        return pcm16_to_ulaw(pcm8k)

    async def play(self, audio):
        await self.fake.play_audio(audio, chunk=1600)

    async def interrupt(self):
        await self.fake.user_started_speaking()

    async def tool_round_trip(self):
        call_id = await self.fake.function_call_request(TOOL["name"], TOOL_ARGS)
        await self.fake.wait_for(lambda: bool(self.fake.function_responses))
        (msg,) = self.fake.function_responses
        assert msg["id"] == call_id and msg["name"] == TOOL["name"]
        return json.loads(msg["content"])


class UltravoxVendor(Vendor):
    name = "ultravox"

    async def start(self, stack, e2e, monkeypatch):
        self.fake = await stack.enter_async_context(FakeUltravoxServer(api_key=KEY))

    def config(self):
        tool = {"temporaryTool": {"modelToolName": TOOL["name"],
                                  "description": TOOL["description"], "client": {}}}
        return (f'VENDOR = "ultravox"\nOPTIONS = {{"api_key": {KEY!r}, '
                f'"base_url": {self.fake.base_url!r}, "system_prompt": "Be brief.", '
                f'"input_sample_rate": {ULTRAVOX_IN}, "output_sample_rate": {ULTRAVOX_OUT}, '
                f'"selected_tools": [{json.dumps(tool)}]}}\n' + HANDLERS)

    async def bridged(self):
        return len(self.fake.received_audio) >= ULTRAVOX_IN * 2 // 5

    def input_format(self):
        return f"pcm16 in {self.fake.input_sample_rate} Hz, out {self.fake.output_sample_rate} Hz"

    def caller_audio(self):
        assert (self.fake.input_sample_rate, self.fake.output_sample_rate) == (
            ULTRAVOX_IN, ULTRAVOX_OUT)
        return resample(samples_of(self.fake.received_audio), ULTRAVOX_IN, RATE)

    def encode_answer(self, pcm8k):
        return to_pcm16(resample(samples_of(pcm8k), RATE, ULTRAVOX_OUT))

    async def play(self, audio):
        await self.fake.play_audio(audio)

    async def interrupt(self):
        await self.fake.playback_clear_buffer()

    async def tool_round_trip(self):
        call_id = await self.fake.client_tool_invocation(TOOL["name"], TOOL_ARGS)
        msg = await self.fake.wait_for("client_tool_result")
        assert msg["invocationId"] == call_id
        return json.loads(msg["result"])


VENDORS: dict[str, Callable[[], Vendor]] = {
    v.name: v for v in (OpenAIVendor, GeminiVendor, ElevenLabsVendor, DeepgramVendor,
                        UltravoxVendor)
}


# -- what the caller heard ------------------------------------------------------------
def block_heard(want: np.ndarray, got: np.ndarray) -> bool:
    """A 20 ms block of the answer counts as heard when the caller's audio there
    correlates with it and carries comparable energy."""
    if len(got) < len(want):
        return False
    a, b = want - want.mean(), got - got.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if not den:
        return False
    ratio = float(np.sqrt((b * b).sum() / (a * a).sum()))
    return float((a * b).sum()) / den >= 0.7 and 0.5 <= ratio <= 2.0


def heard_answer(ref: np.ndarray, heard: np.ndarray) -> dict[str, Any]:
    """Locate the answer ``ref`` in ``heard``; which of its voiced 20 ms blocks were heard."""
    first = int(np.argmax(np.abs(ref) > 1000))
    probe = ref[first:first + 4000]
    lag, r = best_alignment(probe, heard)
    start = lag - first  # where the answer's first sample sits in the dump
    blocks = []
    for b in range(len(ref) // 160):
        want = ref[b * 160:(b + 1) * 160]
        if np.abs(want).max() > 300:
            lo = start + b * 160
            got = heard[lo:lo + 160] if lo >= 0 else np.zeros(0)
            blocks.append((b, block_heard(want, got)))
    heard_ids = [b for b, ok in blocks if ok]
    heard_until = (heard_ids[-1] + 1) * 20 if heard_ids else 0
    before = [ok for b, ok in blocks if b * 20 < heard_until]
    return {"r": r, "start": start, "heard_until_ms": heard_until,
            "voiced_end_ms": (blocks[-1][0] + 1) * 20,
            "heard_before": sum(before) / max(len(before), 1),
            "heard_after": sum(ok for b, ok in blocks if b * 20 >= heard_until)}


# -- the test -----------------------------------------------------------------------
@pytest.mark.fake_mode("script")
@pytest.mark.parametrize("vendor_name", list(VENDORS))
async def test_generic_scenario_bridges_baresip_to_vendor(e2e, tmp_path, monkeypatch,
                                                          vendor_name):
    vendor = VENDORS[vendor_name]()
    # The caller starts talking 3 s into the call, once the connect is long over: its
    # blocking work can stall the event loop, and the RTP jitter buffer then trims the
    # backlog for a while (latency control), which would cut frames out of the speech.
    said = speech("vm-intro")  # 5.6 s of speech
    caller = silence(3000) + said + silence(1000)  # 9.6 s, then baresip hangs up
    answer = speech("demo-thanks")[: RATE * 2 * ANSWER_MS // 1000]
    wav = tmp_path / "caller.wav"
    write_wav(wav, caller)

    async with contextlib.AsyncExitStack() as stack:
        await vendor.start(stack, e2e, monkeypatch)
        await e2e.rule_with("agent", vendor.config(), shipped("inbound_voice_ai.py"),
                            name=f"voice_ai_{vendor_name}")
        bs = Baresip(tmp_path, wav)
        stack.push_async_callback(bs.stop)
        await bs.dial(f"sip:agent@127.0.0.1:{e2e.sip_port}", timeout_s=25)

        async def bridged() -> None:
            while not await vendor.bridged():
                await asyncio.sleep(0.02)

        try:
            await asyncio.wait_for(bridged(), 8)
        except TimeoutError:
            logs = [line for s in [*e2e.gw.runtime.sessions.values(), *e2e.gw.runtime.recent]
                    for line in s.log_lines]
            raise AssertionError(f"{vendor_name}: the call was never bridged: {logs}") from None
        # the AI answers with 3 s of speech at once, and the caller talks over it ~1 s later
        await vendor.play(vendor.encode_answer(answer))
        await asyncio.sleep(1.0)
        await vendor.interrupt()
        result = await vendor.tool_round_trip()
        await wait_until(lambda: not e2e.gw.runtime.sessions, 20,
                         "the session to end after baresip hung up")

    session = e2e.gw.runtime.recent[-1]
    log = "\n".join(session.log_lines)
    assert vendor.invalid() == [], vendor.invalid()

    # 4. the tool call went through the scenario and back to the vendor
    assert session.namespace["tool_calls"] == [(TOOL["name"], TOOL_ARGS)], log
    assert result == TOOL_RESULT

    # 1. the caller's speech reached the vendor in the promised format
    ref = pcm(said, "pcm16")
    got = vendor.caller_audio()
    _lag, r = best_alignment(ref, got)
    found = segment_match(ref, got)
    assert found >= 0.9, (f"{vendor_name}: only {found:.0%} of the caller's speech reached "
                          f"the vendor (r={r:.3f}, format {vendor.input_format()})")

    # 2. + 3. the caller heard the AI's answer, cut short by barge-in
    (dec,) = bs.dumps("dec")
    heard, rate = read_wav(dec)
    assert rate == RATE
    ans = pcm(pcm16_to_ulaw(answer), "pcmu")  # the answer as G.711 carries it
    h = heard_answer(ans, heard)
    print(f"{vendor_name}: vendor got {vendor.input_format()}: {found:.0%} of the caller's "
          f"speech (r={r:.3f}); caller heard the answer with r={h['r']:.3f}, voiced audio "
          f"until {h['heard_until_ms']} of {h['voiced_end_ms']} ms "
          f"({h['heard_before']:.0%} of the blocks before that)")
    assert h["r"] >= 0.9, f"{vendor_name}: the caller did not hear the AI (r={h['r']:.3f})"
    # the call went on well past the end of the answer, so only barge-in can have cut it
    assert len(heard) >= h["start"] + len(ans) + RATE // 2, "the call ended too early"
    assert h["heard_before"] >= 0.9, h
    assert 300 <= h["heard_until_ms"] <= h["voiced_end_ms"] - 500, (
        f"{vendor_name}: barge-in did not cut the answer short: {h}")
    assert h["heard_after"] <= 2, f"{vendor_name}: audio resumed after barge-in: {h}"
