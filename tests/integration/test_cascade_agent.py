"""The cascade agent (connectors/cascade/) with its real offline parts: webrtcvad turns,
PocketSphinx in worker processes, the rule-based responder and espeak-ng, bridged to a
call stand-in that talks G.711 μ-law like a SIP leg."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from connectors.base import VoiceAIEvents
from connectors.cascade import CascadeEvents, create_agent
from connectors.cascade.responder import GREETING, OFFER
from gateway.media.format import PCMU_8K
from gateway.media.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from tests.audio import speech
from tests.fakes.fake_call import FakeCall
from tests.peers import require_binary, require_files

TRANSFER = {"name": "transfer_call", "description": "Transfer to an operator",
            "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}}}


class Recorder:
    """Collects the agent's events in order."""

    def __init__(self, agent: Any) -> None:
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        for name in (CascadeEvents.SpeechStarted, CascadeEvents.SpeechStopped,
                     CascadeEvents.Transcript, CascadeEvents.ResponseDone,
                     VoiceAIEvents.ToolCall, VoiceAIEvents.TurnLatency, VoiceAIEvents.Error,
                     VoiceAIEvents.WebSocketClosed):
            agent.add_event_listener(name, self._on)

    def _on(self, ev: Any) -> None:
        self.events.append((ev.name, ev))
        self.changed.set()

    def of(self, name: str) -> list[Any]:
        return [ev for n, ev in self.events if n == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 30) -> Any:
        async with asyncio.timeout(timeout):
            while len(self.of(name)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.of(name)[count - 1]


def ulaw(pcm16: bytes) -> bytes:
    return pcm16_to_ulaw(pcm16)


async def talk(call: FakeCall, audio_ulaw: bytes, on_frame=None) -> None:
    """Push μ-law audio as 20 ms frames, yielding to the loop between frames."""
    for i in range(0, len(audio_ulaw), 160):
        call.push(audio_ulaw[i:i + 160])
        if on_frame is not None:
            on_frame(i // 160)
        await asyncio.sleep(0)


def played_all(call: FakeCall) -> None:
    call.played_ms = call.input_format.duration_ms(len(call.received))


async def test_offline_cascade_talks_listens_barges_in_and_calls_a_tool() -> None:
    require_binary("espeak-ng")
    require_files("/usr/share/asterisk/sounds/en/auth-thankyou.wav",
                  "asterisk-core-sounds-en-wav")
    agent = await create_agent(tools=[TRANSFER], instructions="Be brief.")
    rec = Recorder(agent)
    call = FakeCall(PCMU_8K)
    try:
        assert agent.capabilities.pcm_input.sample_rate == 16000
        call.send_media_to(agent)
        agent.send_media_to(call)

        # 1. the responder greets as soon as the call's audio is attached
        greeting = await rec.wait(CascadeEvents.ResponseDone)
        assert greeting.text == GREETING and not greeting.interrupted
        heard = np.frombuffer(ulaw_to_pcm16(bytes(call.received)), "<i2").astype(float)
        assert len(heard) > 8000 and np.sqrt(np.mean(heard ** 2)) > 300  # speech, 8 kHz
        assert rec.of(VoiceAIEvents.TurnLatency) == []  # no user turn yet
        played_all(call)

        # 2. the caller speaks: one turn, transcribed, answered, timed
        await talk(call, ulaw(bytes(8000) + speech("auth-thankyou") + bytes(16000)))
        said = await rec.wait(CascadeEvents.Transcript)
        assert "thank you" in said.text
        answer = await rec.wait(CascadeEvents.ResponseDone, 2)
        assert answer.text == f"I heard: {said.text}. {OFFER}"
        lat = rec.of(VoiceAIEvents.TurnLatency)[0]
        assert lat.turn == 1 and lat.vendor == "cascade"
        for key in ("speech_end_to_audio_ms", "stt_ms", "llm_first_token_ms",
                    "tts_first_byte_ms"):
            assert getattr(lat, key) is not None and getattr(lat, key) >= 0, key
        assert lat.speech_end_to_audio_ms >= lat.stt_ms
        started = rec.of(CascadeEvents.SpeechStarted)
        assert [ev.barge_in for ev in started] == [False]
        assert agent.messages[-2] == {"role": "user", "content": said.text}

        # 3. barge-in: the answer is still queued for playout when the caller talks again;
        # the very frame that completes the VAD start window clears playout
        assert agent.responding() and call.cleared == 0
        at_start: dict[str, int] = {}
        agent.add_event_listener(CascadeEvents.SpeechStarted, lambda ev: at_start.update(
            cleared=call.cleared, received=len(call.received)))
        frames: list[int] = []
        await talk(call, ulaw(speech("vm-goodbye") + bytes(16000)), frames.append)
        assert at_start["cleared"] == 1  # cleared before the event fired, in the same frame
        assert rec.of(CascadeEvents.SpeechStarted)[-1].barge_in is True
        await rec.wait(CascadeEvents.Transcript, 2)
        await rec.wait(CascadeEvents.ResponseDone, 3)
        played_all(call)

        # 4. a tool call round-trips: "yes" after the offer -> transfer_call -> result
        agent.messages.append({"role": "assistant", "content": f"I heard: x. {OFFER}"})

        def answer_tool(ev: Any) -> None:
            assert ev.name == "transfer_call" and ev.arguments == {"reason": "yes"}
            assert ev.client is agent
            agent.send_tool_result(ev.call_id, {"transferred": True})

        agent.add_event_listener(VoiceAIEvents.ToolCall, answer_tool)
        agent.send_text("yes")
        done = await rec.wait(CascadeEvents.ResponseDone, 4)
        assert done.text == "Done. Transferring you now."
        tool_msgs = [m for m in agent.messages if m["role"] == "tool"]
        assert tool_msgs and tool_msgs[-1]["content"] == '{"transferred": true}'
        assert rec.of(VoiceAIEvents.Error) == []
    finally:
        await agent.close()
    assert [ev.code for ev in rec.of(VoiceAIEvents.WebSocketClosed)] == [1000]
    assert agent.closed and agent.media_sinks == []


async def test_llm_failure_is_an_error_event_and_the_agent_keeps_listening() -> None:
    require_binary("espeak-ng")

    class Broken:
        name = "broken"

        async def stream(self, messages, tools):
            from connectors.base import ConnectorError

            raise ConnectorError("HTTP 503 from the model server", vendor="llm")
            yield  # an async generator

    agent = await create_agent(llm=Broken())
    rec = Recorder(agent)
    call = FakeCall(PCMU_8K)
    try:
        call.send_media_to(agent)
        agent.send_media_to(call)
        agent.send_text("hello")
        err = await rec.wait(VoiceAIEvents.Error)
        assert "LLM broken" in err.message and "503" in err.message
        assert not agent.closed
        agent.say("Sorry, I am having trouble.")  # the scenario decides what to do
        done = await rec.wait(CascadeEvents.ResponseDone)
        assert done.text == "Sorry, I am having trouble."
        assert len(call.received) > 4000
    finally:
        await agent.close()
