"""Speech recognition with OpenAI's transcription API, one request per utterance.

An :class:`OpenAIASR` stream buffers the utterance's PCM16 16 kHz mono audio; ``finish()``
wraps it in a WAV file (RIFF, PCM16 mono 16000 Hz) and posts it to
``POST /v1/audio/transcriptions`` (https://platform.openai.com/docs/api-reference/audio/createTranscription)
with the official ``openai`` SDK's ``client.audio.transcriptions.create``.

Interim results: the endpoint takes a whole file, so nothing is recognised while the
caller speaks. With ``on_interim`` and a model that streams (every model but
``whisper-1``), the request is made with ``stream=True`` and each
``transcript.text.delta`` server-sent event feeds ``on_interim`` with the transcript so
far: these interims arrive after the caller stopped, while the final is being produced.

Confidence: for ``gpt-4o-transcribe`` / ``gpt-4o-mini-transcribe`` the request includes
``logprobs`` and the result's confidence is the geometric mean of the token
probabilities, ``exp(mean(logprob))`` (0..1); other models report none.

Recognition happens on OpenAI's side; the SDK client is built in a worker thread
(:func:`connectors.base.shared_sdk_client`) and the request is asynchronous I/O, so the
event loop never blocks.
"""

from __future__ import annotations

import contextlib
import math
import struct
import time
from collections.abc import Callable
from typing import Any

from gateway.media.format import AudioFormat, Encoding
from gateway.speech.asr import ASRError, ASRResult, ASRStream
from gateway.speech.openai_tts import describe_openai_error, openai_client

#: What the stream takes: PCM16 LE mono at 16000 Hz (sent as a WAV file).
OPENAI_ASR_FORMAT = AudioFormat(Encoding.PCM16, 16000)
#: The API's upload limit (bytes); 16 kHz PCM16 reaches it after ~13 minutes.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
#: Models that return token logprobs (``include=["logprobs"]``, JSON responses).
LOGPROB_MODELS = frozenset({"gpt-4o-transcribe", "gpt-4o-mini-transcribe",
                            "gpt-4o-mini-transcribe-2025-12-15"})
#: Models that do not stream (``stream=True`` is ignored for them).
NON_STREAMING_MODELS = frozenset({"whisper-1"})


def wav_file(pcm: bytes, rate: int) -> bytes:
    """A RIFF/WAVE file (PCM16 mono at ``rate`` Hz) holding ``pcm``."""
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16,
                         1, 1, rate, rate * 2, 2, 16, b"data", len(pcm))
    return header + pcm


def logprob_confidence(logprobs: Any) -> float | None:
    """``exp(mean(logprob))`` of a list of token logprobs (objects or dicts), else None."""
    values = []
    for item in logprobs or ():
        lp = item.get("logprob") if isinstance(item, dict) else getattr(item, "logprob", None)
        if isinstance(lp, int | float):
            values.append(float(lp))
    if not values:
        return None
    return max(0.0, min(1.0, math.exp(sum(values) / len(values))))


def iso_639_1(language: str) -> str:
    """``"en-US"`` -> ``"en"`` (the transcription API takes ISO-639-1 codes)."""
    return language.split("-")[0].split("_")[0].lower()


class _OpenAIStream:
    """One utterance: audio buffered until :meth:`finish` posts it."""

    def __init__(self, provider: OpenAIASR, language: str | None,
                 on_interim: Callable[[str], Any] | None) -> None:
        self._provider = provider
        self._language = language
        self._on_interim = on_interim
        self._pcm = bytearray()
        self._too_long = False
        self._closed = False

    def feed(self, pcm: bytes) -> None:
        if self._closed or not pcm:
            return
        if len(self._pcm) + len(pcm) + 44 > MAX_UPLOAD_BYTES:
            self._too_long = True
            return
        self._pcm += pcm

    async def finish(self) -> ASRResult:
        if self._closed:
            raise ASRError("openai asr: the utterance was already finished or cancelled")
        self._closed = True
        t0 = time.perf_counter()
        audio_ms = OPENAI_ASR_FORMAT.duration_ms(len(self._pcm))
        if self._too_long:
            raise ASRError(f"openai asr: the utterance is longer than the API's "
                           f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB upload limit")
        if not self._pcm:
            return ASRResult(text="", confidence=None, stt_ms=0.0, audio_ms=0.0)
        pcm, self._pcm = bytes(self._pcm), bytearray()
        text, confidence = await self._provider._transcribe(
            wav_file(pcm, OPENAI_ASR_FORMAT.sample_rate), self._language, self._on_interim)
        return ASRResult(text=text, confidence=confidence,
                         stt_ms=(time.perf_counter() - t0) * 1000, audio_ms=audio_ms)

    async def cancel(self) -> None:
        self._closed = True
        self._pcm = bytearray()


class OpenAIASR:
    """Cloud recognition with OpenAI's transcription API (one request per utterance).

    Args:
        model: ``"gpt-4o-mini-transcribe"`` (default), ``"gpt-4o-transcribe"``,
            ``"whisper-1"`` ...
        api_key: OpenAI API key (default ``OPENAI_API_KEY``; never logged).
        base_url: API base URL, e.g. ``"https://api.openai.com/v1"`` (default
            ``OPENAI_BASE_URL`` or OpenAI's).
        language: ISO-639-1 code sent with every request (``"en"``); default: derived
            from the stream's language (``"en-US"`` -> ``"en"``).
        prompt: text to guide the model's style or vocabulary.
        timeout: seconds one transcription request may take.
        max_retries: SDK retries on connection errors, 408, 409, 429 and 5xx.
    """

    name = "openai"
    input_format = OPENAI_ASR_FORMAT

    def __init__(self, model: str = "gpt-4o-mini-transcribe", api_key: str | None = None,
                 base_url: str | None = None, language: str | None = None, *,
                 prompt: str | None = None, timeout: float = 30.0,
                 max_retries: int = 2) -> None:
        self.model = model
        self.language = language
        self.prompt = prompt
        self.timeout = timeout
        self._api_key = api_key
        self._base_url = base_url
        self._max_retries = max_retries

    def __repr__(self) -> str:
        return f"<OpenAIASR {self.model}>"

    def open_stream(self, *, language: str = "en-US",
                    on_interim: Callable[[str], Any] | None = None) -> ASRStream:
        """Start an utterance (PCM16 16 kHz in); returns at once, nothing is sent yet."""
        lang = self.language or (iso_639_1(language) if language else None)
        return _OpenAIStream(self, lang, on_interim)

    async def _transcribe(self, wav: bytes, language: str | None,
                          on_interim: Callable[[str], Any] | None) -> tuple[str, float | None]:
        client = await openai_client(self._api_key, self._base_url, self._max_retries,
                                     error=ASRError)
        import openai  # imported by the client's build, off the loop: cheap now

        args: dict[str, Any] = {"model": self.model,
                                "file": ("utterance.wav", wav, "audio/wav"),
                                "response_format": "json"}
        if language:
            args["language"] = language
        if self.prompt:
            args["prompt"] = self.prompt
        if self.model in LOGPROB_MODELS:
            args["include"] = ["logprobs"]
        streaming = on_interim is not None and self.model not in NON_STREAMING_MODELS
        try:
            if not streaming:
                result = await client.audio.transcriptions.create(**args, timeout=self.timeout)
                return (str(getattr(result, "text", result) or "").strip(),
                        logprob_confidence(getattr(result, "logprobs", None)))
            return await self._stream(client, args, on_interim)
        except openai.OpenAIError as exc:
            raise ASRError(describe_openai_error(exc, "openai asr", client.api_key)) from None

    async def _stream(self, client: Any, args: dict[str, Any],
                      on_interim: Callable[[str], Any] | None) -> tuple[str, float | None]:
        stream = await client.audio.transcriptions.create(**args, stream=True,
                                                          timeout=self.timeout)
        so_far = ""
        async with contextlib.aclosing(stream.__aiter__()) as events:
            async for event in events:
                kind = getattr(event, "type", None)
                if kind == "transcript.text.delta":
                    so_far += event.delta
                    if on_interim is not None and so_far.strip():
                        on_interim(so_far.strip())
                elif kind == "transcript.text.done":
                    return event.text.strip(), logprob_confidence(event.logprobs)
        raise ASRError("openai asr: the transcription stream ended without "
                       "transcript.text.done")


__all__ = ["OPENAI_ASR_FORMAT", "OpenAIASR", "iso_639_1", "logprob_confidence", "wav_file"]
