"""Speech synthesis with OpenAI's Speech API, streamed as raw PCM.

Calls ``POST /v1/audio/speech`` (https://platform.openai.com/docs/api-reference/audio/createSpeech)
through the official ``openai`` SDK's
``client.audio.speech.with_streaming_response.create(..., response_format="pcm")``, which
does not read the body eagerly: audio chunks are yielded as they arrive over the chunked
HTTP response, so a :class:`~gateway.runtime.player.Player` starts speaking before
synthesis ends.

Format: with ``response_format="pcm"`` the body is headerless PCM16 little-endian mono at
24000 Hz (OpenAI's text-to-speech guide, "Supported output formats"; the SDK's own
``openai.helpers.local_audio_player`` plays it at ``SAMPLE_RATE = 24000``).

The SDK client is built in a worker thread and shared per event loop
(:func:`connectors.base.shared_sdk_client`); the request itself is asynchronous I/O, so
synthesis never blocks the event loop. Errors become :class:`gateway.speech.TTSError`
naming the HTTP status and the server's message, with the API key scrubbed out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from gateway.media.format import AudioFormat, Encoding
from gateway.speech.tts import TTSError

#: What ``response_format="pcm"`` streams: PCM16 LE mono, 24000 Hz, no header.
OPENAI_TTS_FORMAT = AudioFormat(Encoding.PCM16, 24000)
#: Longest ``input`` the Speech API takes (characters).
MAX_INPUT_CHARS = 4096


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (an API key) replaced by ``***``."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def describe_openai_error(exc: BaseException, what: str, api_key: str | None) -> str:
    """A one-line message for an ``openai`` SDK failure: the HTTP status, OpenAI's error
    ``code`` and ``message`` for a status error; the cause for a connection error. The key
    is never in it (OpenAI redacts it in its own messages; it is scrubbed here too)."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else None
        if message is None:
            raw = exc.body if isinstance(exc.body, str) else ""
            message = raw.strip()[:300] or exc.response.reason_phrase
        code = body.get("code") or body.get("type")
        auth = " (authentication refused)" if exc.status_code in (401, 403) else ""
        text = f"{what}: HTTP {exc.status_code}{auth}" + (f" [{code}]" if code else "")
        return scrub(f"{text}: {message}", api_key)
    if isinstance(exc, openai.APITimeoutError):
        return f"{what}: the request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return scrub(f"{what}: cannot reach the server: {type(cause).__name__}: {cause}",
                     api_key)
    return scrub(f"{what}: {type(exc).__name__}: {exc}", api_key)


async def openai_client(api_key: str | None, base_url: str | None, max_retries: int,
                        *, error: type[Exception]) -> Any:
    """The loop's shared ``openai.AsyncOpenAI`` for these settings, built off the loop.

    ``api_key``/``base_url`` left None are read by the SDK from ``OPENAI_API_KEY`` /
    ``OPENAI_BASE_URL``.

    Raises:
        error: no API key anywhere (the SDK refuses to build a client).
    """
    from connectors.base import shared_sdk_client

    def build() -> Any:
        import openai  # ~1 s on first import: done here, in the worker thread

        client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url,
                                    max_retries=max_retries)
        # First-use imports, done here rather than on the loop: the SDK's audio
        # resources (~0.1 s, on first attribute access) and the anyio asyncio backend
        # its HTTP client loads on the first request (~25 ms).
        _ = client.audio.speech.with_streaming_response, client.audio.transcriptions
        with contextlib.suppress(ImportError):
            import anyio._backends._asyncio  # noqa: F401
        return client

    key = ("openai-speech", api_key, base_url, max_retries,
           os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL"))
    try:
        return await shared_sdk_client(key, build)
    except Exception as exc:
        import openai  # the failed build imported it

        if isinstance(exc, openai.OpenAIError):  # e.g. no API key anywhere
            raise error(f"openai: {exc}") from None
        raise


class OpenAITTS:
    """Cloud synthesis with OpenAI's Speech API, streamed progressively.

    Args:
        model: ``"gpt-4o-mini-tts"`` (default), ``"tts-1"``, ``"tts-1-hd"`` ...
        voice: default voice (``"alloy"``, ``"marin"``, ``"cedar"`` ...); ``synthesize``
            may name another.
        api_key: OpenAI API key (default ``OPENAI_API_KEY``; never logged).
        base_url: API base URL, e.g. ``"https://api.openai.com/v1"`` (default
            ``OPENAI_BASE_URL`` or OpenAI's).
        instructions: how to speak (tone, accent, pace); not for ``tts-1``/``tts-1-hd``.
        speed: 0.25 to 4.0 (default: the server's, 1.0).
        timeout: seconds a request may take in total.
        max_retries: SDK retries on connection errors, 408, 409, 429 and 5xx.
    """

    name = "openai"
    output_format = OPENAI_TTS_FORMAT

    def __init__(self, model: str = "gpt-4o-mini-tts", voice: str = "alloy",
                 api_key: str | None = None, base_url: str | None = None,
                 instructions: str | None = None, *, speed: float | None = None,
                 timeout: float = 30.0, max_retries: int = 2) -> None:
        self.model = model
        self.voice = voice
        self.instructions = instructions
        self.speed = speed
        self.timeout = timeout
        self._api_key = api_key
        self._base_url = base_url
        self._max_retries = max_retries

    def __repr__(self) -> str:
        return f"<OpenAITTS {self.model} {self.voice}>"

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        """Yield PCM16 24000 Hz mono chunks of ``text`` spoken, as the server streams them.

        Each chunk holds whole samples (an even number of bytes).

        Raises:
            TTSError: no API key, the server refused (HTTP status and its message), the
                connection failed or timed out.
            ValueError: ``text`` is longer than :data:`MAX_INPUT_CHARS`.
        """
        text = " ".join(str(text).split())
        if len(text) > MAX_INPUT_CHARS:
            raise ValueError(f"text is {len(text)} characters; OpenAI takes at most "
                             f"{MAX_INPUT_CHARS}")
        if not text:
            return
        client = await openai_client(self._api_key, self._base_url, self._max_retries,
                                     error=TTSError)
        import openai  # imported by the client's build, off the loop: cheap now

        args: dict[str, Any] = {"model": self.model, "voice": voice or self.voice,
                                "input": text, "response_format": "pcm"}
        if self.instructions:
            args["instructions"] = self.instructions
        if self.speed is not None:
            args["speed"] = float(self.speed)
        carry = b""
        try:
            async with client.audio.speech.with_streaming_response.create(
                    **args, timeout=self.timeout) as response:
                async for chunk in response.iter_bytes():
                    carry += chunk
                    cut = len(carry) - len(carry) % 2
                    if cut:
                        yield carry[:cut]
                        carry = carry[cut:]
        except openai.OpenAIError as exc:
            raise TTSError(describe_openai_error(exc, "openai tts", client.api_key)) from None
        if carry:
            raise TTSError("openai tts: the PCM stream ended in the middle of a sample")
