"""The ASR media unit (gateway/runtime/asr.py): a call's G.711 audio in, VoxEngine
ASREvents out, PocketSphinx in worker processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.media.format import PCMU_8K
from gateway.media.g711 import pcm16_to_ulaw
from gateway.runtime.asr import ASR, ASREvents
from tests.audio import speech
from tests.fakes.fake_call import FakeCall
from tests.peers import require_files


class Events:
    def __init__(self, unit: ASR) -> None:
        self.items: list[Any] = []
        self.changed = asyncio.Event()
        for name in vars(ASREvents).values():
            if isinstance(name, str) and name.startswith("ASREvents."):
                unit.add_event_listener(name, self._on)

    def _on(self, ev: Any) -> None:
        self.items.append(ev)
        self.changed.set()

    def names(self) -> list[str]:
        return [ev.name.split(".", 1)[1] for ev in self.items]

    async def wait(self, name: str, count: int = 1, timeout: float = 30) -> Any:
        async with asyncio.timeout(timeout):
            while self.names().count(name) < count:
                self.changed.clear()
                await self.changed.wait()
        return [ev for ev in self.items if ev.name == f"ASREvents.{name}"][count - 1]


async def talk(call: FakeCall, pcm16: bytes) -> None:
    ulaw = pcm16_to_ulaw(pcm16)
    for i in range(0, len(ulaw), 160):
        call.push(ulaw[i:i + 160])
        await asyncio.sleep(0)


async def test_asr_unit_recognises_each_utterance() -> None:
    require_files("/usr/share/asterisk/sounds/en/auth-thankyou.wav",
                  "asterisk-core-sounds-en-wav")
    call = FakeCall(PCMU_8K)
    asr = ASR(interim_results=True)
    ev = Events(asr)
    call.send_media_to(asr)
    await ev.wait("Started")
    await talk(call, bytes(8000) + speech("auth-thankyou") + bytes(16000))
    result = await ev.wait("Result")
    assert "thank you" in result.text and result.asr is asr
    assert result.confidence is not None
    assert ev.names()[:3] == ["Started", "CaptureStarted", "SpeechCaptured"]
    await talk(call, speech("demo-thanks") + bytes(16000))
    second = await ev.wait("Result", 2)
    assert second.text and second.text != result.text
    assert "InterimResult" in ev.names()  # 5.5 s of speech gives interim hypotheses
    asr.stop()
    assert ev.names()[-1] == "Stopped"
    await talk(call, speech("auth-thankyou") + bytes(16000))
    await asyncio.sleep(0.3)
    assert ev.names().count("Result") == 2  # stopped: nothing more
    assert call.media_sinks == []


async def test_unknown_profile_and_language() -> None:
    with pytest.raises(ValueError, match="unknown ASR"):
        ASR("no-such-engine")
    call = FakeCall(PCMU_8K)
    asr = ASR(language="de-DE")
    ev = Events(asr)
    call.send_media_to(asr)
    await talk(call, bytes(8000) + speech("auth-thankyou") + bytes(16000))
    err = await ev.wait("ASRError")
    assert "en-US" in err.error
    await asr.close()
