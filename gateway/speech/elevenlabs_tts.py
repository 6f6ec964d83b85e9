"""Speech synthesis with ElevenLabs' streaming text-to-speech API.

Calls ``POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000``
(https://elevenlabs.io/docs/api-reference/text-to-speech/stream) through the official
``elevenlabs`` SDK's ``AsyncElevenLabs(base_url=...).text_to_speech.stream(...)``, which
yields the chunked HTTP body as it arrives, so a player starts speaking before synthesis
ends. The SDK takes any ``base_url`` (its ``environment`` only supplies the default), so
no hand-written HTTP is needed to reach a local or regional endpoint.

Format: ``pcm_16000`` is headerless PCM16 little-endian mono at 16000 Hz (ElevenLabs'
``output_format`` names are ``codec_samplerate[_bitrate]``). 16 kHz is the rate a
telephone leg resamples from cheaply (2:1 to 8 kHz) and still carries wideband speech;
``pcm_44100`` needs a Pro plan, and ``ulaw_8000`` would lock the player to G.711.

The SDK is the optional extra ``pip install 'voice-gateway[elevenlabs]'``, imported only
when a synthesis starts. Its client is built in a worker thread and shared per event loop
(:func:`connectors.base.shared_sdk_client`); the request is asynchronous I/O, so the
event loop never blocks. Errors become :class:`gateway.speech.TTSError` with the HTTP
status and ElevenLabs' ``detail`` message, never the key.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.media.format import AudioFormat, Encoding
from gateway.speech.openai_tts import scrub
from gateway.speech.tts import TTSError

#: What ``output_format="pcm_16000"`` streams: PCM16 LE mono, 16000 Hz, no header.
ELEVENLABS_TTS_FORMAT = AudioFormat(Encoding.PCM16, 16000)
#: ElevenLabs' production API (the SDK's ``ElevenLabsEnvironment.PRODUCTION``).
DEFAULT_BASE_URL = "https://api.elevenlabs.io"
#: "George", a premade voice every account has (the SDK's own examples use it).
DEFAULT_VOICE_ID = "JBFqnCBsd6RMkjVDRZzb"
#: Longest text one request takes (characters; Flash/Turbo v2.5 allow 40000).
MAX_TEXT_CHARS = 40000
_MISSING = "the ElevenLabs SDK is not installed: pip install 'voice-gateway[elevenlabs]'"


def _detail(body: Any) -> tuple[str | None, str]:
    """(status code word, message) of an ElevenLabs error body.

    Shapes seen: ``{"detail": {"status": "invalid_api_key", "message": "..."}}`` and
    FastAPI's 422 ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``.
    """
    detail = body.get("detail", body) if isinstance(body, Mapping) else body
    if isinstance(detail, Mapping):
        code = detail.get("status") or detail.get("code") or detail.get("type")
        message = detail.get("message") or detail.get("msg") or ""
        return (str(code) if code else None), str(message)
    if isinstance(detail, list):
        parts = []
        for item in detail[:3]:
            if isinstance(item, Mapping):
                loc = ".".join(str(p) for p in item.get("loc") or ())
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        return "validation_error", "; ".join(parts)
    return None, str(detail or "").strip()[:300]


def _build_sdk(api_key: str, base_url: str) -> Any:
    """An ``AsyncElevenLabs`` (creates an httpx client and its TLS trust store: blocking,
    so it runs in a worker thread via ``shared_sdk_client``)."""
    try:
        from elevenlabs.client import AsyncElevenLabs  # ~1 s on first import
    except ImportError as exc:
        raise TTSError(f"{_MISSING} ({exc})") from None
    client = AsyncElevenLabs(api_key=api_key, base_url=base_url)
    _ = client.text_to_speech  # lazily imported by the SDK on first access: here
    return client


class ElevenLabsTTS:
    """Cloud synthesis with ElevenLabs, streamed progressively as PCM16 16 kHz.

    Args:
        voice_id: default voice (``synthesize`` may name another); default "George".
        model_id: ``"eleven_flash_v2_5"`` (default, lowest latency),
            ``"eleven_turbo_v2_5"``, ``"eleven_multilingual_v2"`` ...
        api_key: ElevenLabs API key, sent as ``xi-api-key`` (default
            ``ELEVENLABS_API_KEY``; never logged).
        base_url: API base URL (default ``ELEVENLABS_BASE_URL`` or
            ``https://api.elevenlabs.io``).
        language_code: ISO-639-1 code to enforce a language (``"de"``).
        voice_settings: ``{"stability", "similarity_boost", "style", "speed",
            "use_speaker_boost"}`` for this provider's requests.
        timeout: seconds a request may take.
    """

    name = "elevenlabs"
    output_format = ELEVENLABS_TTS_FORMAT

    def __init__(self, voice_id: str = DEFAULT_VOICE_ID, model_id: str = "eleven_flash_v2_5",
                 api_key: str | None = None, base_url: str | None = None, *,
                 language_code: str | None = None,
                 voice_settings: Mapping[str, Any] | None = None,
                 timeout: float = 30.0) -> None:
        self.voice_id = voice_id
        self.model_id = model_id
        self.language_code = language_code
        self.voice_settings = dict(voice_settings) if voice_settings else None
        self.timeout = timeout
        self._api_key = api_key
        self._base_url = base_url

    def __repr__(self) -> str:
        return f"<ElevenLabsTTS {self.model_id} {self.voice_id}>"

    async def _client(self) -> tuple[Any, str]:
        if importlib.util.find_spec("elevenlabs") is None:
            raise TTSError(_MISSING)
        from connectors.base import shared_sdk_client

        key = self._api_key or os.environ.get("ELEVENLABS_API_KEY")
        if not key:
            raise TTSError("elevenlabs: no API key (pass api_key= or set ELEVENLABS_API_KEY)")
        base = (self._base_url or os.environ.get("ELEVENLABS_BASE_URL")
                or DEFAULT_BASE_URL).rstrip("/")
        sdk = await shared_sdk_client(("elevenlabs-tts", key, base), lambda: _build_sdk(key, base))
        return sdk, key

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        """Yield PCM16 16000 Hz mono chunks of ``text`` spoken, as the server streams them.

        ``voice`` is a voice id. Each chunk holds whole samples (an even number of bytes).

        Raises:
            TTSError: the SDK is not installed, no API key, the server refused (HTTP
                status and its message), the connection failed or timed out.
            ValueError: ``text`` is longer than :data:`MAX_TEXT_CHARS`.
        """
        text = " ".join(str(text).split())
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        if not text:
            return
        sdk, key = await self._client()
        import httpx  # imported with the SDK, off the loop: cheap now
        from elevenlabs.core.api_error import ApiError

        args: dict[str, Any] = {"text": text, "model_id": self.model_id,
                                "output_format": "pcm_16000",
                                "request_options": {"timeout_in_seconds": self.timeout}}
        if self.language_code:
            args["language_code"] = self.language_code
        if self.voice_settings:
            from elevenlabs.types import VoiceSettings

            args["voice_settings"] = VoiceSettings(**self.voice_settings)
        carry = b""
        try:
            async with contextlib.aclosing(
                    sdk.text_to_speech.stream(voice or self.voice_id, **args)) as chunks:
                async for chunk in chunks:
                    carry += chunk
                    cut = len(carry) - len(carry) % 2
                    if cut:
                        yield carry[:cut]
                        carry = carry[cut:]
        except ApiError as exc:  # never str() it: it renders the headers
            code, message = _detail(exc.body)
            auth = " (authentication refused)" if exc.status_code in (401, 403) else ""
            what = f"elevenlabs tts: HTTP {exc.status_code}{auth}" + (f" [{code}]" if code else "")
            raise TTSError(scrub(f"{what}: {message}" if message else what, key)) from None
        except httpx.TimeoutException:
            raise TTSError(f"elevenlabs tts: no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise TTSError(scrub(f"elevenlabs tts: cannot reach the server: "
                                 f"{type(exc).__name__}: {exc}", key)) from None
        if carry:
            raise TTSError("elevenlabs tts: the PCM stream ended in the middle of a sample")
