"""Speech services shared by every call: recognition (ASR) and synthesis (TTS).

Offline defaults: PocketSphinx (:class:`~gateway.speech.asr.PocketsphinxASR`) and
espeak-ng (:class:`~gateway.speech.tts.EspeakTTS`). CPU-heavy recognition runs in a
bounded pool of worker processes shared per event loop (:func:`speech_pool`), so
N calls share a few model copies. The gateway sizes it from ``VGW_SPEECH_WORKERS``
via :func:`configure`.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from gateway.speech.asr import ASRError, ASRProvider, ASRResult, ASRStream, PocketsphinxASR
from gateway.speech.spawner import close_spawner, shared_spawner
from gateway.speech.tts import EspeakTTS, TTSError, TTSProvider
from gateway.speech.workers import SpeechWorkerError, SphinxPool

__all__ = [
    "ASRError",
    "ASRProvider",
    "ASRResult",
    "ASRStream",
    "EspeakTTS",
    "PocketsphinxASR",
    "SpeechWorkerError",
    "SphinxPool",
    "TTSError",
    "TTSProvider",
    "close_speech",
    "configure",
    "create_asr",
    "create_tts",
    "speech_pool",
    "start_speech",
]

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SphinxPool] = (
    weakref.WeakKeyDictionary())
_tts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EspeakTTS] = (
    weakref.WeakKeyDictionary())
_settings: dict[str, Any] = {"workers": None, "sphinx_options": {}}


def configure(*, workers: int | None = None, sphinx_options: dict[str, Any] | None = None,
              ) -> None:
    """Size the pools created from now on (``workers`` decoders; default one per core)."""
    _settings["workers"] = workers
    _settings["sphinx_options"] = dict(sphinx_options or {})


def worker_count() -> int:
    """How many recognition workers a pool gets."""
    return max(1, int(_settings["workers"] or os.cpu_count() or 1))


def speech_pool() -> SphinxPool:
    """The running loop's shared PocketSphinx pool (created on first use)."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = SphinxPool(worker_count(), _settings["sphinx_options"])
    return pool


def shared_tts() -> EspeakTTS:
    """The running loop's shared espeak-ng synthesiser (bounded to one per core)."""
    loop = asyncio.get_running_loop()
    tts = _tts.get(loop)
    if tts is None:
        tts = _tts[loop] = EspeakTTS(max_concurrent=worker_count())
    return tts


async def start_speech(recognition_workers: int = 0) -> None:
    """Start the spawner process and ``recognition_workers`` PocketSphinx workers now.

    Forking the gateway stalls its event loop for a few ms per child (tens of ms with
    uvloop and a large heap), so the gateway does it at start, before any call.
    """
    await shared_spawner().start()
    if recognition_workers > 0:
        await speech_pool().warm_up(recognition_workers)


async def close_speech() -> None:
    """Stop the running loop's speech workers and spawner (when the gateway stops)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()
    await close_spawner()


#: Cloud providers by kind and name: (module, class); imported only when named.
_CLOUD: dict[str, dict[str, tuple[str, str]]] = {
    "ASR": {"openai": ("gateway.speech.openai_asr", "OpenAIASR"),
            "deepgram": ("gateway.speech.deepgram_asr", "DeepgramASR")},
    "TTS": {"openai": ("gateway.speech.openai_tts", "OpenAITTS"),
            "elevenlabs": ("gateway.speech.elevenlabs_tts", "ElevenLabsTTS")},
}


def _cloud(kind: str, name: str, offline: str, options: dict[str, Any]) -> Any:
    """Build the cloud provider ``name`` of ``kind`` ("ASR"/"TTS").

    Raises:
        ValueError: unknown provider name.
    """
    import importlib

    found = _CLOUD[kind].get(name.lower())
    if found is None:
        cloud = ", ".join(repr(n) for n in _CLOUD[kind])
        raise ValueError(f"unknown {kind} provider {name!r} (offline: {offline!r}; "
                         f"cloud: {cloud})")
    module, cls = found
    return getattr(importlib.import_module(module), cls)(**options)


def create_asr(provider: str | ASRProvider = "pocketsphinx", **options: Any) -> ASRProvider:
    """An ASR provider by name, or the given provider object.

    Names: "pocketsphinx" (offline default), "openai"
    (:class:`~gateway.speech.openai_asr.OpenAIASR`), "deepgram"
    (:class:`~gateway.speech.deepgram_asr.DeepgramASR`; extra ``[deepgram]``).
    ``options`` go to the provider's constructor (``model=``, ``api_key=``,
    ``base_url=`` ...). Cloud providers' modules are imported only when named.

    Raises:
        ValueError: unknown provider name.
    """
    if not isinstance(provider, str):
        return provider
    if provider.lower() in ("pocketsphinx", "sphinx", "default"):
        return PocketsphinxASR(**options)
    return _cloud("ASR", provider, "pocketsphinx", options)


def create_tts(provider: str | TTSProvider = "espeak", **options: Any) -> TTSProvider:
    """A TTS provider by name, or the given provider object.

    Names: "espeak" (offline default), "openai"
    (:class:`~gateway.speech.openai_tts.OpenAITTS`), "elevenlabs"
    (:class:`~gateway.speech.elevenlabs_tts.ElevenLabsTTS`; extra ``[elevenlabs]``).
    ``options`` go to the provider's constructor (``voice=``, ``api_key=``,
    ``base_url=`` ...). Cloud providers' modules are imported only when named.

    Raises:
        ValueError: unknown provider name.
    """
    if not isinstance(provider, str):
        return provider
    if provider.lower() in ("espeak", "espeak-ng", "default"):
        return EspeakTTS(**options) if options else shared_tts()
    return _cloud("TTS", provider, "espeak", options)
