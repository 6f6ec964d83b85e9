"""Streaming speech recognition with Deepgram's live transcription WebSocket.

Each utterance is one ``wss://api.deepgram.com/v1/listen`` connection
(https://developers.deepgram.com/reference/speech-to-text/listen-streaming), opened with
the official ``deepgram-sdk``'s ``AsyncDeepgramClient(...).listen.v1.connect(...)``
(the SDK reaches any URL through its ``DeepgramClientEnvironment``):

* query: ``model``, ``encoding=linear16``, ``sample_rate=16000``, ``channels=1``,
  ``interim_results`` (true when an ``on_interim`` callback is given), ``punctuate``,
  ``smart_format``, ``language``; header ``Authorization: Token <key>``;
* client -> server: binary PCM16 LE mono 16 kHz audio; ``{"type": "KeepAlive"}`` when
  no audio was sent for :data:`KEEPALIVE_S` (Deepgram closes an idle stream after
  10 s); ``{"type": "CloseStream"}`` after the last audio;
* server -> client: ``Results`` (``is_final`` false: interim hypothesis; true: a
  finalised segment, ``channel.alternatives[0].transcript``/``confidence``),
  ``Metadata``, ``SpeechStarted``, ``UtteranceEnd``, ``Error``; after ``CloseStream``
  the server flushes the remaining finals and ``Metadata`` and closes the socket.

``feed()`` only queues audio (never blocks; audio fed while the connection is being made
is sent once it is up); a sender task coalesces and sends it. ``finish()`` sends
``CloseStream``, waits for the server to close, and returns the finalised segments'
transcripts joined, with their duration-weighted mean confidence. The utterance's end
is decided by the gateway's VAD, so Deepgram's own endpointing (``speech_final``) is not
needed and ``Finalize`` is not used (one connection per utterance).

The SDK is the optional extra ``pip install 'voice-gateway[deepgram]'``; it is imported
(~0.8 s) and its client built in a worker thread, shared per event loop
(:func:`connectors.base.shared_sdk_client`). Errors become :class:`gateway.speech.ASRError`
with the HTTP status and Deepgram's ``dg-error`` message for a refused handshake, the
close code and reason for a dropped stream, ``variant``/``description`` for an ``Error``
message, never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from gateway.media.format import AudioFormat, Encoding
from gateway.speech.asr import ASRError, ASRResult, ASRStream
from gateway.speech.openai_tts import scrub

log = logging.getLogger(__name__)

#: What the stream takes and declares (``encoding=linear16&sample_rate=16000``).
DEEPGRAM_ASR_FORMAT = AudioFormat(Encoding.PCM16, 16000)
#: Deepgram's production streaming endpoint (the SDK appends ``/v1/listen``).
DEFAULT_URL = "wss://api.deepgram.com"
#: Seconds without audio after which a ``KeepAlive`` is sent.
KEEPALIVE_S = 5.0
#: Most audio sent in one WebSocket message (bytes: 100 ms at 16 kHz).
MAX_MESSAGE_BYTES = 3200
_PATH = "/v1/listen"
_MISSING = "the Deepgram SDK is not installed: pip install 'voice-gateway[deepgram]'"


def listen_base_url(base_url: str | None) -> str:
    """Normalise a custom URL to what the SDK's ``environment.production`` expects:
    ``ws(s)://host[:port]`` (``http(s)`` is mapped to ``ws(s)``; a trailing
    ``/v1/listen`` is dropped)."""
    url = (base_url or os.environ.get("DEEPGRAM_BASE_URL") or DEFAULT_URL).strip()
    if url.startswith(("http://", "https://")):
        url = "ws" + url[4:]
    url = url.rstrip("/")
    return url[: -len(_PATH)] if url.endswith(_PATH) else url


def _build_sdk(api_key: str, url: str) -> Any:
    """An ``AsyncDeepgramClient`` whose streaming endpoint is ``url``. Imports the SDK
    (whose socket module imports the deprecated ``websockets.legacy``: the warning is
    silenced) and builds an httpx client: blocking, so it runs in a worker thread."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import deepgram.listen.v1.raw_client  # noqa: F401
            from deepgram import AsyncDeepgramClient
            from deepgram.environment import DeepgramClientEnvironment
    except ImportError as exc:
        raise ASRError(f"{_MISSING} ({exc})") from None
    prod = DeepgramClientEnvironment.PRODUCTION
    rest = "http" + url[2:] if url.startswith("ws") else url
    env = DeepgramClientEnvironment(base=rest, production=url, agent=prod.agent,
                                    agent_rest=prod.agent_rest)
    client = AsyncDeepgramClient(api_key=api_key, environment=env)
    _ = client.listen.v1  # lazily imported by the SDK on first access: here
    return client


def _get(msg: Any, name: str) -> Any:
    return msg.get(name) if isinstance(msg, Mapping) else getattr(msg, name, None)


def _handshake_error(exc: Any, key: str) -> ASRError:
    """An ASRError for the SDK's ``ApiError`` from a refused handshake. Never str() the
    ApiError: it renders the request headers, API key included. Deepgram explains a
    refusal in the ``dg-error`` response header (JSON ``err_code``/``err_msg``)."""
    status = getattr(exc, "status_code", None)
    auth = " (authentication refused)" if status in (401, 403) else ""
    text = f"deepgram asr: HTTP {status} on the WebSocket handshake{auth}"
    cause = exc.__context__
    headers = getattr(cause, "headers", None) or getattr(
        getattr(cause, "response", None), "headers", None)
    raw = headers.get("dg-error") if headers is not None else None
    if raw:
        try:
            data = json.loads(raw)
            detail = (f"[{data.get('err_code')}] {data.get('err_msg')}"
                      if isinstance(data, dict) else str(raw))
        except ValueError:
            detail = str(raw)
        text += f": {detail}"
    return ASRError(scrub(text, key))


class _DeepgramStream:
    """One utterance on its own ``/v1/listen`` connection."""

    def __init__(self, provider: DeepgramASR, language: str | None,
                 on_interim: Callable[[str], Any] | None) -> None:
        self._provider = provider
        self._language = language
        self._on_interim = on_interim
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._finals: list[tuple[str, float, float]] = []  # transcript, confidence, s
        self._interim = ""
        self._last_interim = ""
        self._error: ASRError | None = None
        self._fed = 0
        self._closed = False
        #: Deepgram's ``request_id`` for this utterance (from ``Metadata``/``Results``).
        self.request_id: str | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- ASRStream ------------------------------------------------------------------
    def feed(self, pcm: bytes) -> None:
        if self._closed or not pcm or self._task.done():
            return
        self._fed += len(pcm)
        self._queue.put_nowait(bytes(pcm))

    async def finish(self) -> ASRResult:
        if self._closed:
            raise ASRError("deepgram asr: the utterance was already finished or cancelled")
        self._closed = True
        t0 = time.perf_counter()
        self._queue.put_nowait(None)
        limit = self._provider.finish_timeout
        try:
            async with asyncio.timeout(limit):
                await self._task
        except TimeoutError:
            raise ASRError(f"deepgram asr: no final result within {limit:g} s after the "
                           "end of the audio") from None
        if self._error is not None:
            raise self._error
        finals = [(t, c, d) for t, c, d in self._finals if t]
        text = " ".join(t for t, _, _ in finals)
        weight = sum(max(d, 1e-3) for _, _, d in finals)
        confidence = (sum(c * max(d, 1e-3) for _, c, d in finals) / weight) if finals else None
        return ASRResult(text=text, confidence=confidence,
                         stt_ms=(time.perf_counter() - t0) * 1000,
                         audio_ms=DEEPGRAM_ASR_FORMAT.duration_ms(self._fed))

    async def cancel(self) -> None:
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    # -- connection -------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._session()
        except ASRError as exc:
            self._error = exc
        except Exception as exc:
            self._error = self._error or ASRError(scrub(
                f"deepgram asr: {type(exc).__name__}: {exc}", self._provider._key or ""))

    async def _session(self) -> None:
        provider = self._provider
        sdk, key = await provider._client()
        from deepgram.core.api_error import ApiError
        from websockets.exceptions import ConnectionClosed

        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(provider.connect_timeout):
                    socket = await stack.enter_async_context(
                        sdk.listen.v1.connect(**self._params()))
            except ApiError as exc:
                raise _handshake_error(exc, key) from None
            except TimeoutError:
                raise ASRError(f"deepgram asr: no connection to {provider.url} within "
                               f"{provider.connect_timeout:g} s") from None
            except OSError as exc:
                raise ASRError(f"deepgram asr: cannot connect to {provider.url}: "
                               f"{exc.strerror or exc}") from None
            receiver = asyncio.get_running_loop().create_task(self._receive(socket))
            try:
                try:
                    await self._send(socket, receiver)
                except ConnectionClosed:
                    pass  # the receiver reports why
                await receiver
            finally:
                if not receiver.done():
                    receiver.cancel()
                    with contextlib.suppress(BaseException):
                        await receiver

    def _params(self) -> dict[str, Any]:
        provider = self._provider
        params: dict[str, Any] = {
            "model": provider.model, "encoding": "linear16",
            "sample_rate": DEEPGRAM_ASR_FORMAT.sample_rate, "channels": 1,
            "interim_results": "true" if self._on_interim is not None else "false",
            "punctuate": "true" if provider.punctuate else "false",
            "smart_format": "true" if provider.smart_format else "false",
        }
        if self._language:
            params["language"] = self._language
        if provider.extra_query:
            params["request_options"] = {"additional_query_parameters": dict(
                provider.extra_query)}
        return params

    async def _send(self, socket: Any, receiver: asyncio.Task[None]) -> None:
        ended = False
        while not ended and not receiver.done():
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    chunk = await self._queue.get()
            except TimeoutError:
                await socket.send_keep_alive()
                continue
            if chunk is None:
                break
            buf = bytearray(chunk)
            while len(buf) < MAX_MESSAGE_BYTES and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    ended = True
                    break
                buf += nxt
            await socket.send_media(bytes(buf))
        if not receiver.done():
            await socket.send_close_stream()

    async def _receive(self, socket: Any) -> None:
        from websockets.exceptions import ConnectionClosedError

        try:
            async for msg in socket:
                if isinstance(msg, bytes | bytearray):
                    continue
                kind = _get(msg, "type")
                if kind == "Results":
                    self._on_results(msg)
                elif kind == "Metadata":
                    self.request_id = _get(msg, "request_id") or self.request_id
                elif kind == "Error":
                    self._error = ASRError(f"deepgram asr: {_get(msg, 'variant')}: "
                                           f"{_get(msg, 'description')}")
        except ConnectionClosedError as exc:
            if self._error is None:
                rcvd = exc.rcvd
                why = f"{rcvd.code} {rcvd.reason}".strip() if rcvd is not None else "no close frame"
                self._error = ASRError(f"deepgram asr: the server dropped the stream ({why})")

    def _on_results(self, msg: Any) -> None:
        channel = _get(msg, "channel")
        alts = _get(channel, "alternatives") or []
        if not alts:
            return
        text = str(_get(alts[0], "transcript") or "").strip()
        meta = _get(msg, "metadata")
        self.request_id = _get(meta, "request_id") or self.request_id
        if _get(msg, "is_final"):
            self._finals.append((text, float(_get(alts[0], "confidence") or 0.0),
                                 float(_get(msg, "duration") or 0.0)))
            self._interim = ""
        else:
            self._interim = text
        if self._on_interim is None:
            return
        so_far = " ".join([t for t, _, _ in self._finals if t]
                          + ([self._interim] if self._interim else []))
        if so_far and so_far != self._last_interim:
            self._last_interim = so_far
            try:
                self._on_interim(so_far)
            except Exception:
                log.exception("deepgram asr: on_interim failed")


class DeepgramASR:
    """Cloud streaming recognition with Deepgram (one WebSocket per utterance).

    Args:
        model: ``"nova-3"`` (default), ``"nova-2-phonecall"`` ...
        api_key: Deepgram API key, sent as ``Authorization: Token <key>`` (default
            ``DEEPGRAM_API_KEY``; never logged).
        base_url: streaming endpoint, ``wss://api.deepgram.com`` by default (or
            ``DEEPGRAM_BASE_URL``); ``/v1/listen`` is appended.
        language: BCP-47 tag sent with every stream (``"en-US"``); default: the
            stream's language.
        punctuate: add punctuation and capitalisation.
        smart_format: format numbers, dates ... (Deepgram's ``smart_format``).
        extra_query: further ``/v1/listen`` query parameters (``{"keyterm": "Acme"}``).
        connect_timeout: seconds the handshake may take.
        finish_timeout: seconds ``finish()`` waits for the last results after the audio.
    """

    name = "deepgram"
    input_format = DEEPGRAM_ASR_FORMAT

    def __init__(self, model: str = "nova-3", api_key: str | None = None,
                 base_url: str | None = None, *, language: str | None = None,
                 punctuate: bool = True, smart_format: bool = False,
                 extra_query: Mapping[str, Any] | None = None,
                 connect_timeout: float = 10.0, finish_timeout: float = 10.0) -> None:
        self.model = model
        self.language = language
        self.punctuate = punctuate
        self.smart_format = smart_format
        self.extra_query = dict(extra_query) if extra_query else None
        self.connect_timeout = connect_timeout
        self.finish_timeout = finish_timeout
        self._key = api_key or os.environ.get("DEEPGRAM_API_KEY")
        self.url = listen_base_url(base_url)

    def __repr__(self) -> str:
        return f"<DeepgramASR {self.model} {self.url}>"

    def open_stream(self, *, language: str = "en-US",
                    on_interim: Callable[[str], Any] | None = None) -> ASRStream:
        """Start an utterance (PCM16 16 kHz in); returns at once, connecting in the
        background (audio fed meanwhile is queued).

        Raises:
            ASRError: the SDK is not installed or there is no API key.
        """
        if importlib.util.find_spec("deepgram") is None:
            raise ASRError(_MISSING)
        if not self._key:
            raise ASRError("deepgram asr: no API key (pass api_key= or set DEEPGRAM_API_KEY)")
        return _DeepgramStream(self, self.language or language or None, on_interim)

    async def _client(self) -> tuple[Any, str]:
        from connectors.base import shared_sdk_client

        key = self._key or ""
        url = self.url
        sdk = await shared_sdk_client(("deepgram-listen", key, url),
                                      lambda: _build_sdk(key, url))
        return sdk, key
