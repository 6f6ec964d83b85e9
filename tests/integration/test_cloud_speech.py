"""Cloud speech providers against local servers shaped like their APIs, over loopback.

TTS: OpenAI ``audio.speech`` (PCM16 24 kHz) and ElevenLabs streaming (PCM16 16 kHz),
through their official SDKs. ASR: OpenAI transcription (WAV upload) and Deepgram's
``/v1/listen`` WebSocket (deepgram-sdk). Each fake validates what it receives against
the SDK's request types and what it sends against the SDK's response types
(``invalid_received`` / ``invalid_sent`` must stay empty). Progressive synthesis is shown
by holding a fake mid-stream and seeing audio arrive before the end (no clocks).
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
from typing import Any

import numpy as np
import pytest

from gateway.media.format import PCM16_16K, PCM16_24K, PCMU_8K
from gateway.media.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from gateway.media.resample import Resampler
from gateway.runtime.asr import ASR, ASREvents
from gateway.runtime.player import Player, PlayerEvents, tts_source
from gateway.speech import (
    ASRError,
    EspeakTTS,
    PocketsphinxASR,
    TTSError,
    create_asr,
    create_tts,
)
from gateway.speech.deepgram_asr import DeepgramASR
from gateway.speech.elevenlabs_tts import DEFAULT_VOICE_ID, ElevenLabsTTS
from gateway.speech.openai_asr import OpenAIASR
from gateway.speech.openai_tts import OpenAITTS
from tests.audio import best_alignment, speech
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_deepgram_listen import FakeDeepgramListen
from tests.fakes.fake_elevenlabs_tts import FakeElevenLabsTTS
from tests.fakes.fake_openai_audio import SPEECH_PATH, TRANSCRIPTIONS_PATH, FakeOpenAIAudio
from tests.peers import require_files

OPENAI_KEY = "sk-test-cloud-speech-0123456789"
ELEVEN_KEY = "xi-test-cloud-speech-0123456789"
DEEPGRAM_KEY = "dg-test-cloud-speech-0123456789"
WRONG = "wrong-secret-key-9876543210"


@pytest.fixture(autouse=True)
def _recordings() -> None:
    require_files("/usr/share/asterisk/sounds/en/hello-world.wav", "asterisk-core-sounds-en-wav")


def resampled(pcm8k: bytes, rate: int) -> bytes:
    r = Resampler(8000, rate)
    return r.resample(pcm8k) + r.flush()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float64)


async def progressive(chunks: Any, holding: asyncio.Event, release: Any) -> tuple[bytes, bytes]:
    """Read ``chunks`` while the fake is held mid-stream: (audio before the release, all)."""
    first = await anext(chunks)
    await holding.wait()
    before = bytes(first)
    assert before, "a chunk arrived before synthesis ended"
    release()
    rest = b"".join([c async for c in chunks])
    return before, before + rest


# -- OpenAI TTS -------------------------------------------------------------------------
async def test_openai_tts_streams_pcm24k_before_synthesis_ends() -> None:
    ref = resampled(speech("hello-world"), 24000)
    async with asyncio.timeout(20), FakeOpenAIAudio(api_key=OPENAI_KEY) as fake:
        fake.speech_audio = ref
        fake.hold_speech_after(2)
        tts = OpenAITTS(voice="marin", api_key=OPENAI_KEY, base_url=fake.base_url,
                        instructions="Speak calmly.")
        assert tts.output_format == PCM16_24K
        before, audio = await progressive(tts.synthesize("Hello,   world!"), fake.holding,
                                          fake.release)
        assert 0 < len(before) <= 2 * 4800 < len(audio)  # 2 chunks of 100 ms at 24 kHz
        assert audio == ref  # headerless PCM16 24 kHz, byte for byte
        assert fake.speech_requests == [{
            "model": "gpt-4o-mini-tts", "voice": "marin", "input": "Hello, world!",
            "response_format": "pcm", "instructions": "Speak calmly."}]
        assert fake.authorizations == [f"Bearer {OPENAI_KEY}"]
        assert not fake.invalid_received and not fake.unsupported and not fake.invalid_sent


async def test_openai_tts_errors_name_the_status_never_the_key(monkeypatch) -> None:
    async with asyncio.timeout(20), FakeOpenAIAudio(api_key=OPENAI_KEY) as fake:
        bad = OpenAITTS(api_key=WRONG, base_url=fake.base_url)
        with pytest.raises(TTSError) as err:
            _ = [c async for c in bad.synthesize("Hello")]
        msg = str(err.value)
        assert "HTTP 401" in msg and "invalid_api_key" in msg and "Incorrect API key" in msg
        assert WRONG not in msg and fake.unauthorized == 1
        fake.reply_error(SPEECH_PATH, 400, "Voice 'x' is not available for this model.",
                         code="invalid_value")
        with pytest.raises(TTSError, match=r"HTTP 400 \[invalid_value\]: Voice 'x' is not"):
            _ = [c async for c in OpenAITTS(api_key=OPENAI_KEY, base_url=fake.base_url)
                 .synthesize("Hello")]
        with pytest.raises(ValueError, match="at most 4096"):
            _ = [c async for c in bad.synthesize("x" * 5000)]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(TTSError, match="OPENAI_API_KEY"):
        _ = [c async for c in OpenAITTS(base_url="http://127.0.0.1:9/v1").synthesize("Hi")]


async def test_openai_tts_player_speaks_into_a_call_before_synthesis_ends() -> None:
    ref = speech("hello-world")
    async with asyncio.timeout(30), FakeOpenAIAudio(api_key=OPENAI_KEY) as fake:
        fake.speech_audio = resampled(ref, 24000)
        fake.hold_speech_after(3)
        provider = OpenAITTS(api_key=OPENAI_KEY, base_url=fake.base_url)
        call = FakeCall(PCMU_8K)
        player = Player(tts_source(provider, "Hello world"), provider.output_format)
        names: list[str] = []
        done = asyncio.Event()
        started = asyncio.Event()

        def on(ev: Any) -> None:
            names.append(ev.name.split(".", 1)[1])
            if ev.name == PlayerEvents.Started:
                started.set()
            if ev.name == PlayerEvents.PlaybackFinished:
                done.set()

        for name in (PlayerEvents.Started, PlayerEvents.PlaybackReady,
                     PlayerEvents.PlaybackFinished, PlayerEvents.Error):
            player.add_event_listener(name, on)
        player.send_media_to(call)
        await fake.holding.wait()
        await started.wait()
        assert "PlaybackReady" not in names  # speaking while synthesis is held
        fake.release()
        await done.wait()
    assert names.index("Started") < names.index("PlaybackReady") < names.index(
        "PlaybackFinished") and "Error" not in names
    heard = samples(ulaw_to_pcm16(bytes(call.received)))
    _lag, r = best_alignment(samples(ref), heard)
    assert r >= 0.9, f"r={r:.3f}"
    assert abs(len(heard) / 8000 - len(ref) / 16000) < 0.1


async def test_stopping_a_player_closes_the_synthesis_stream() -> None:
    async with asyncio.timeout(20), FakeOpenAIAudio(api_key=OPENAI_KEY) as fake:
        fake.hold_speech_after(2)
        provider = OpenAITTS(api_key=OPENAI_KEY, base_url=fake.base_url)
        player = Player(tts_source(provider, "Hello world"), provider.output_format)
        player.send_media_to(FakeCall(PCMU_8K))
        await fake.holding.wait()
        player.stop()
        await fake.wait_until(lambda: fake.disconnects == 1)
        assert fake.speech_chunks_sent == 2


# -- ElevenLabs TTS ---------------------------------------------------------------------
async def test_elevenlabs_tts_streams_pcm16k_before_synthesis_ends() -> None:
    ref = speech("hello-world")
    async with asyncio.timeout(20), FakeElevenLabsTTS(api_key=ELEVEN_KEY) as fake:
        fake.speech_pcm, fake.speech_rate = ref, 8000
        fake.hold_after(3)
        tts = ElevenLabsTTS(api_key=ELEVEN_KEY, base_url=fake.base_url, language_code="en",
                            voice_settings={"stability": 0.4, "speed": 1.05})
        assert tts.output_format == PCM16_16K
        before, audio = await progressive(tts.synthesize("Hello world."), fake.holding,
                                          fake.release)
        assert 0 < len(before) <= 3 * 3200 < len(audio)  # 3 chunks of 100 ms at 16 kHz
        assert audio == fake.sent_audio
        assert abs(len(audio) / 32000 - len(ref) / 16000) < 0.01
        _lag, r = best_alignment(samples(resampled(ref, 16000)), samples(audio))
        assert r > 0.99
        assert fake.requests == [{
            "voice_id": DEFAULT_VOICE_ID, "output_format": "pcm_16000",
            "query": {"output_format": "pcm_16000"},
            "body": {"text": "Hello world.", "model_id": "eleven_flash_v2_5",
                     "language_code": "en",
                     "voice_settings": {"stability": 0.4, "speed": 1.05}}}]
        assert fake.api_keys == [ELEVEN_KEY]
        assert not fake.invalid_received and not fake.unsupported and not fake.invalid_sent


async def test_elevenlabs_tts_errors_name_the_status_never_the_key(monkeypatch) -> None:
    async with asyncio.timeout(20), FakeElevenLabsTTS(api_key=ELEVEN_KEY) as fake:
        with pytest.raises(TTSError) as err:
            _ = [c async for c in ElevenLabsTTS(api_key=WRONG, base_url=fake.base_url)
                 .synthesize("Hello")]
        msg = str(err.value)
        assert "HTTP 401" in msg and "invalid_api_key" in msg and WRONG not in msg
        good = ElevenLabsTTS(api_key=ELEVEN_KEY, base_url=fake.base_url)
        with pytest.raises(TTSError, match=r"HTTP 404 \[voice_not_found\].*nobody"):
            _ = [c async for c in good.synthesize("Hello", voice="nobody")]
        fake.reply_error(429, "too_many_concurrent_requests", "Too many concurrent requests.")
        with pytest.raises(TTSError, match=r"HTTP 429 \[too_many_concurrent_requests\]"):
            _ = [c async for c in good.synthesize("Hello")]
        assert not fake.invalid_sent
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    with pytest.raises(TTSError, match="ELEVENLABS_API_KEY"):
        _ = [c async for c in ElevenLabsTTS().synthesize("Hello")]


# -- OpenAI ASR -------------------------------------------------------------------------
async def test_openai_asr_posts_the_utterance_as_wav_and_returns_the_transcript() -> None:
    pcm = resampled(speech("auth-thankyou"), 16000)
    async with asyncio.timeout(20), FakeOpenAIAudio(api_key=OPENAI_KEY) as fake:
        fake.transcripts.extend(["Thank you.", "Thank you for calling."])
        asr = OpenAIASR(api_key=OPENAI_KEY, base_url=fake.base_url)
        assert asr.input_format == PCM16_16K
        stream = asr.open_stream(language="en-US")
        for i in range(0, len(pcm), 640):
            stream.feed(pcm[i:i + 640])
        assert fake.transcription_requests == []  # nothing is sent before finish()
        result = await stream.finish()
        assert result.text == "Thank you."
        assert result.confidence == pytest.approx(math.exp(fake.logprob))
        assert result.audio_ms == pytest.approx(len(pcm) / 32)
        req = fake.transcription_requests[0]
        assert {k: v for k, v in req.items() if k != "file"} == {
            "model": "gpt-4o-mini-transcribe", "language": "en", "response_format": "json",
            "include": ["logprobs"]}
        wav = req["file"]
        assert (wav["name"], wav["rate"], wav["channels"], wav["width"]) == (
            "utterance.wav", 16000, 1, 2)
        assert wav["pcm"] == pcm
        interims: list[str] = []
        stream = asr.open_stream(on_interim=interims.append)
        stream.feed(pcm)
        result = await stream.finish()
        assert result.text == "Thank you for calling."
        assert interims == ["Thank", "Thank you", "Thank you for", "Thank you for calling."]
        assert fake.transcription_requests[1]["stream"] is True
        assert not fake.invalid_received and not fake.invalid_sent
        whisper = OpenAIASR("whisper-1", api_key=OPENAI_KEY, base_url=fake.base_url,
                            language="de")
        stream = whisper.open_stream(on_interim=interims.append)
        stream.feed(pcm)
        assert (await stream.finish()).confidence is None  # whisper-1: no logprobs
        assert fake.transcription_requests[2]["language"] == "de"
        assert "stream" not in fake.transcription_requests[2]
        assert not fake.invalid_received and not fake.invalid_sent


async def test_openai_asr_errors_name_the_status_never_the_key() -> None:
    async with asyncio.timeout(20), FakeOpenAIAudio(api_key=OPENAI_KEY) as fake:
        stream = OpenAIASR(api_key=WRONG, base_url=fake.base_url).open_stream()
        stream.feed(bytes(3200))
        with pytest.raises(ASRError) as err:
            await stream.finish()
        assert "HTTP 401" in str(err.value) and WRONG not in str(err.value)
        fake.reply_error(TRANSCRIPTIONS_PATH, 400, "Audio file is too short.",
                         code="audio_too_short")
        stream = OpenAIASR(api_key=OPENAI_KEY, base_url=fake.base_url).open_stream()
        stream.feed(bytes(320))
        with pytest.raises(ASRError, match=r"HTTP 400 \[audio_too_short\]: Audio file is too"):
            await stream.finish()
    empty = OpenAIASR(api_key=OPENAI_KEY, base_url="http://127.0.0.1:9/v1").open_stream()
    assert (await empty.finish()).text == ""  # no audio: no request


# -- Deepgram ASR -----------------------------------------------------------------------
async def test_deepgram_asr_streams_linear16_and_joins_the_final_segments() -> None:
    pcm = resampled(speech("auth-thankyou") + speech("vm-goodbye"), 16000)
    async with asyncio.timeout(20), FakeDeepgramListen(api_key=DEEPGRAM_KEY) as fake:
        fake.script(("Thank you.", 0.9), ("Goodbye.", 0.8), final_every_ms=600)
        asr = DeepgramASR(api_key=DEEPGRAM_KEY, base_url=fake.url)
        assert asr.input_format == PCM16_16K
        interims: list[str] = []
        stream = asr.open_stream(language="en-US", on_interim=interims.append)
        for i in range(0, len(pcm), 640):
            stream.feed(pcm[i:i + 640])  # never blocks: queued while connecting
        await fake.wait_until(lambda: bool(fake.connections)
                              and len(fake.connections[0].audio) == len(pcm))
        result = await stream.finish()
        conn = fake.connections[0]
        assert result.text == "Thank you. Goodbye."
        assert result.confidence is not None
        assert 0.8 < result.confidence < 0.9  # duration-weighted mean of the finals
        assert result.audio_ms == pytest.approx(len(pcm) / 32)
        assert conn.query == {"model": "nova-3", "encoding": "linear16", "sample_rate": "16000",
                              "channels": "1", "interim_results": "true", "punctuate": "true",
                              "smart_format": "false", "language": "en-US"}
        assert conn.authorization == f"Token {DEEPGRAM_KEY}"
        assert bytes(conn.audio) == pcm
        assert conn.messages == [{"type": "CloseStream"}] and conn.closed == (1000, "")
        assert interims[0] == "Thank" and interims[-1] == "Thank you. Goodbye."
        assert stream.request_id == conn.request_id  # type: ignore[attr-defined]
        assert not fake.invalid_received and not fake.invalid_handshakes


async def test_deepgram_asr_errors_are_precise_and_keyless() -> None:
    async with asyncio.timeout(20), FakeDeepgramListen(api_key=DEEPGRAM_KEY) as fake:
        stream = DeepgramASR(api_key=WRONG, base_url=fake.url).open_stream()
        stream.feed(bytes(640))
        with pytest.raises(ASRError) as err:
            await stream.finish()
        msg = str(err.value)
        assert "HTTP 401" in msg and "INVALID_AUTH" in msg and WRONG not in msg
        fake.drop_next(1011, "NET-0000: The service has encountered an internal error.")
        stream = DeepgramASR(api_key=DEEPGRAM_KEY, base_url=fake.url).open_stream()
        stream.feed(bytes(640))
        await fake.wait_until(lambda: len(fake.connections) == 1
                              and fake.connections[0].closed is not None)
        with pytest.raises(ASRError, match=r"dropped the stream \(1011 NET-0000"):
            await stream.finish()
        model = DeepgramASR("no-such-model", api_key=DEEPGRAM_KEY, base_url=fake.url)
        stream = model.open_stream()
        with pytest.raises(ASRError, match=r"HTTP 400.*model='no-such-model'"):
            await stream.finish()
    with pytest.raises(ASRError, match="DEEPGRAM_API_KEY"):
        DeepgramASR(api_key="").open_stream()


async def test_asr_unit_recognises_a_call_with_deepgram() -> None:
    require_files("/usr/share/asterisk/sounds/en/auth-thankyou.wav",
                  "asterisk-core-sounds-en-wav")
    said = speech("auth-thankyou")
    async with asyncio.timeout(30), FakeDeepgramListen(api_key=DEEPGRAM_KEY) as fake:
        fake.script(("Thank you.", 0.93))
        call = FakeCall(PCMU_8K)
        asr = ASR(profile=DeepgramASR(api_key=DEEPGRAM_KEY, base_url=fake.url),
                  interim_results=True)
        events: list[Any] = []
        got = asyncio.Event()

        def on(ev: Any) -> None:
            events.append(ev)
            if ev.name in (ASREvents.Result, ASREvents.ASRError):
                got.set()

        for name in vars(ASREvents).values():
            if isinstance(name, str) and name.startswith("ASREvents."):
                asr.add_event_listener(name, on)
        call.send_media_to(asr)
        ulaw = pcm16_to_ulaw(bytes(8000) + said + bytes(16000))
        for i in range(0, len(ulaw), 160):
            call.push(ulaw[i:i + 160])
            await asyncio.sleep(0)
        await got.wait()
    names = [ev.name.split(".", 1)[1] for ev in events]
    result = events[-1]
    assert result.name == ASREvents.Result, names
    assert (result.text, result.confidence, result.asr) == ("Thank you.", 0.93, asr)
    assert names.index("CaptureStarted") < names.index("SpeechCaptured") < names.index("Result")
    assert [ev.text for ev in events if ev.name == ASREvents.InterimResult][:1] == ["Thank"]
    conn = fake.connections[0]
    assert conn.query["encoding"] == "linear16" and conn.query["sample_rate"] == "16000"
    assert abs(conn.audio_s - len(said) / 16000) < 0.6  # the utterance, VAD-trimmed, 16 kHz
    assert not fake.invalid_received


# -- registry and missing extras ---------------------------------------------------------
def test_providers_by_name_with_options_and_offline_defaults() -> None:
    tts = create_tts("openai", voice="cedar", api_key="k", base_url="http://h/v1")
    assert isinstance(tts, OpenAITTS) and tts.voice == "cedar"
    el = create_tts("ElevenLabs", voice_id="v1", model_id="eleven_turbo_v2_5", api_key="k")
    assert isinstance(el, ElevenLabsTTS) and (el.voice_id, el.model_id) == (
        "v1", "eleven_turbo_v2_5")
    assert isinstance(create_tts("espeak", voice="en-gb"), EspeakTTS)
    asr = create_asr("openai", model="whisper-1", api_key="k")
    assert isinstance(asr, OpenAIASR) and asr.model == "whisper-1"
    dg = create_asr("deepgram", model="nova-2-phonecall", api_key="k", base_url="https://h")
    assert isinstance(dg, DeepgramASR) and (dg.model, dg.url) == ("nova-2-phonecall", "wss://h")
    assert isinstance(create_asr(), PocketsphinxASR)
    with pytest.raises(ValueError, match="cloud: 'openai', 'elevenlabs'"):
        create_tts("polly")
    with pytest.raises(ValueError, match="cloud: 'openai', 'deepgram'"):
        create_asr("whisper")


async def test_missing_extras_name_the_pip_extra(monkeypatch) -> None:
    real = importlib.util.find_spec

    def no_vendor_sdks(name: str, *args: Any) -> Any:
        return None if name in ("deepgram", "elevenlabs") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", no_vendor_sdks)
    with pytest.raises(ASRError, match=r"pip install 'voice-gateway\[deepgram\]'"):
        DeepgramASR(api_key="k").open_stream()
    with pytest.raises(TTSError, match=r"pip install 'voice-gateway\[elevenlabs\]'"):
        _ = [c async for c in ElevenLabsTTS(api_key="k").synthesize("Hello")]
