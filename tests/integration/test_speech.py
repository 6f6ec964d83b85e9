"""Speech services against the real engines: espeak-ng synthesis (a child process,
streamed) and PocketSphinx recognition in pooled worker processes."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
from scipy.signal import resample_poly

from gateway.speech import EspeakTTS, PocketsphinxASR, SphinxPool, TTSError, create_asr, create_tts
from gateway.speech.asr import ASRError
from tests.audio import speech
from tests.peers import require_binary, require_files


def speech16(*names: str) -> bytes:
    for name in names:
        require_files(f"/usr/share/asterisk/sounds/en/{name}.wav", "asterisk-core-sounds-en-wav")
    x = np.frombuffer(speech(*names), "<i2").astype(np.float64)
    return np.clip(resample_poly(x, 2, 1), -32768, 32767).astype("<i2").tobytes()


async def recognise(asr: PocketsphinxASR, pcm: bytes, chunk: int = 640):
    stream = asr.open_stream()
    for pos in range(0, len(pcm), chunk):
        stream.feed(pcm[pos:pos + chunk])
        await asyncio.sleep(0)
    return await stream.finish()


@pytest.fixture
async def pool():
    p = SphinxPool(size=1)
    try:
        yield p
    finally:
        await p.close()


async def test_espeak_streams_pcm16_22050_progressively() -> None:
    require_binary("espeak-ng")
    tts = EspeakTTS()
    text = ("This sentence is long enough that espeak writes its audio in several pieces. "
            "And here is a second one, so the stream has plenty of chunks.")
    chunks = [c async for c in tts.synthesize(text)]
    assert len(chunks) > 2  # yielded as produced, not in one piece at the end
    audio = np.frombuffer(b"".join(chunks), "<i2")
    assert tts.output_format.sample_rate == 22050
    seconds = len(audio) / 22050
    assert 4 < seconds < 20
    assert np.sqrt(np.mean(audio.astype(float) ** 2)) > 500  # speech, not silence
    assert all(len(c) % 2 == 0 for c in chunks)


async def test_espeak_errors_are_precise() -> None:
    require_binary("espeak-ng")
    with pytest.raises(TTSError, match="not installed"):
        [c async for c in EspeakTTS(binary="no-such-espeak").synthesize("hi")]
    with pytest.raises(ValueError, match="limit"):
        [c async for c in EspeakTTS().synthesize("a" * 6000)]
    assert [c async for c in EspeakTTS().synthesize("   ")] == []
    assert isinstance(create_tts("espeak"), EspeakTTS)
    with pytest.raises(ValueError, match="unknown TTS"):
        create_tts("nope")


async def test_pocketsphinx_transcribes_a_prompt_in_a_worker_process(pool) -> None:
    asr = PocketsphinxASR(pool)
    stream = asr.open_stream()
    stream.feed(speech16("auth-thankyou"))
    result = await stream.finish()
    assert "thank you" in result.text, result
    assert result.confidence is not None and 0 < result.confidence <= 1
    assert 950 <= result.audio_ms <= 970
    # the decoder lives in another process: PocketSphinx holds the GIL while decoding
    assert stream._worker._proc.pid != os.getpid()
    assert isinstance(create_asr("pocketsphinx"), PocketsphinxASR)
    with pytest.raises(ValueError, match="unknown ASR"):
        create_asr("nope")
    with pytest.raises(ASRError, match="en-US"):
        asr.open_stream(language="de-DE")


async def test_a_busy_pool_queues_streams_with_their_audio(pool) -> None:
    asr = PocketsphinxASR(pool)
    a = asr.open_stream()
    b = asr.open_stream()  # the only decoder is taken by a: b buffers its audio
    pcm = speech16("auth-thankyou")
    for pos in range(0, len(pcm), 640):
        a.feed(pcm[pos:pos + 640])
        b.feed(pcm[pos:pos + 640])
        await asyncio.sleep(0)
    ra, rb = await asyncio.gather(a.finish(), b.finish())
    assert "thank you" in ra.text and "thank you" in rb.text
    assert pool.waits == 1 and pool._started == 1


async def test_interim_results_while_speaking(pool) -> None:
    await pool.warm_up()  # interim results come from a running decoder
    asr = PocketsphinxASR(pool, interim_every_ms=400)
    interim: list[str] = []
    stream = asr.open_stream(on_interim=interim.append)
    pcm = speech16("demo-thanks")
    for pos in range(0, len(pcm), 640):
        stream.feed(pcm[pos:pos + 640])
        await asyncio.sleep(0.005)
    result = await stream.finish()
    assert interim and result.text
    assert len(set(interim)) == len(interim)  # only changes are reported


async def test_a_dead_worker_fails_its_stream_and_is_replaced(pool) -> None:
    asr = PocketsphinxASR(pool)
    stream = asr.open_stream()
    stream.feed(speech16("auth-thankyou")[:16000])
    while pool._started == 0 or stream._worker is None:
        await asyncio.sleep(0.01)
    stream._worker._proc.kill()
    with pytest.raises(ASRError, match="PocketSphinx"):
        await stream.finish()
    result = await recognise(asr, speech16("auth-thankyou"))
    assert "thank you" in result.text
