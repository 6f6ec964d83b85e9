"""A local stand-in for ElevenLabs' streaming text-to-speech endpoint.

Serves ``POST /v1/text-to-speech/{voice_id}/stream``
(https://elevenlabs.io/docs/api-reference/text-to-speech/stream) on uvicorn in the
test's loop, checked against the official ``elevenlabs`` SDK's own declarations (it has
no request-body model for this endpoint, so the fake uses the type hints of the SDK
method that builds the request, ``AsyncRawTextToSpeechClient.stream``):

* ``xi-api-key`` must be the fake's key: 401 ``{"detail": {"status": "invalid_api_key",
  "message": ...}}`` otherwise (``needs_authorization`` when absent);
* the voice must be one of :attr:`voices`: 404 ``voice_not_found`` otherwise;
* query ``output_format`` must be one of the SDK's ``TextToSpeechStreamRequestOutputFormat``
  literals (default ``mp3_44100_128``), ``optimize_streaming_latency`` 0..4,
  ``enable_logging`` a boolean; other query keys are refused;
* the JSON body may hold only the keys the SDK sends (``text``, ``model_id``,
  ``voice_settings`` ...), each validated against the SDK method's type hint
  (``voice_settings`` as ``elevenlabs.types.VoiceSettings``, no unknown keys), ``text``
  required and non-empty. A refusal is FastAPI's 422 shape
  ``{"detail": [{"loc", "msg", "type"}]}``, itself validated as the SDK's
  ``HttpValidationError`` before it is sent.

The answer streams the configured speech (:attr:`speech_pcm` at :attr:`speech_rate`,
default an Asterisk recording at 8 kHz) converted to the requested format: ``pcm_<rate>``
(PCM16 LE mono, no header), ``ulaw_8000`` or ``alaw_8000``, in ``chunk_ms`` pieces with
chunked transfer encoding. MP3/Opus formats are valid requests this fake does not serve
(400, recorded in :attr:`unsupported`). :meth:`hold_after` stops the next stream after
N chunks until :meth:`release` (:attr:`holding` is set meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import typing
import uuid
import warnings
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from elevenlabs.text_to_speech.raw_client import AsyncRawTextToSpeechClient
from elevenlabs.text_to_speech.types import TextToSpeechStreamRequestOutputFormat
from elevenlabs.types import HttpValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request

from tests.fakes.fake_openai_audio import (
    InvalidMessage,
    LoopbackASGIServer,
    Receive,
    Scope,
    Send,
    check_response,
    no_unknown_keys,
    pause,
    watch_disconnect,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

PATH_PREFIX = "/v1/text-to-speech/"
OUTPUT_FORMATS = frozenset(
    typing.get_args(typing.get_args(TextToSpeechStreamRequestOutputFormat)[0]))
#: Query keys and JSON body keys the SDK's ``stream`` method sends, with their hints.
_HINTS = typing.get_type_hints(AsyncRawTextToSpeechClient.stream)
QUERY_KEYS = frozenset({"enable_logging", "optimize_streaming_latency", "output_format"})
BODY_KEYS = frozenset(_HINTS) - QUERY_KEYS - {"voice_id", "request_options", "return"}
_BODY_ADAPTERS = {k: TypeAdapter(_HINTS[k]) for k in BODY_KEYS}
TEXT_NORMALIZATION = frozenset({"auto", "on", "off"})


def _detail(status: str, message: str) -> dict[str, Any]:
    return {"detail": {"status": status, "message": message}}


def _validation_error(errors: list[tuple[list[Any], str, str]]) -> dict[str, Any]:
    return {"detail": [{"loc": loc, "msg": msg, "type": kind} for loc, msg, kind in errors]}


def check_stream_request(query: Mapping[str, str], body: Any
                         ) -> tuple[dict[str, Any], list[tuple[list[Any], str, str]]]:
    """Validate a stream request's query and JSON body; return (the parsed request, the
    422 errors found, empty when valid)."""
    errors: list[tuple[list[Any], str, str]] = []
    parsed: dict[str, Any] = {"output_format": query.get("output_format", "mp3_44100_128")}
    for key, value in query.items():
        if key not in QUERY_KEYS:
            errors.append((["query", key], "unknown query parameter", "extra_forbidden"))
        elif key == "output_format" and value not in OUTPUT_FORMATS:
            errors.append((["query", key], f"Input should be one of {sorted(OUTPUT_FORMATS)}",
                           "enum"))
        elif key == "optimize_streaming_latency":
            if not value.isdigit() or not 0 <= int(value) <= 4:
                errors.append((["query", key], "Input should be 0, 1, 2, 3 or 4", "enum"))
            else:
                parsed[key] = int(value)
        elif key == "enable_logging":
            if value not in ("true", "false"):
                errors.append((["query", key], "Input should be a valid boolean", "bool_parsing"))
            else:
                parsed[key] = value == "true"
    if not isinstance(body, dict):
        errors.append((["body"], "Input should be a valid dictionary", "dict_type"))
        return parsed, errors
    for key, value in body.items():
        if key not in BODY_KEYS:
            errors.append((["body", key], "Extra inputs are not permitted", "extra_forbidden"))
            continue
        try:
            no_unknown_keys(_BODY_ADAPTERS[key].validate_python(value), key)
        except ValidationError as exc:
            for e in exc.errors(include_url=False)[:3]:
                errors.append((["body", key, *e["loc"]], e["msg"], e["type"]))
            continue
        except InvalidMessage as exc:
            errors.append((["body", key], str(exc), "extra_forbidden"))
            continue
        parsed[key] = value
    if not isinstance(body.get("text"), str):
        if "text" not in body:
            errors.append((["body", "text"], "Field required", "missing"))
    elif not body["text"].strip():
        errors.append((["body", "text"], "text must not be empty", "value_error"))
    norm = body.get("apply_text_normalization")
    if norm is not None and norm not in TEXT_NORMALIZATION:
        errors.append((["body", "apply_text_normalization"],
                       "Input should be 'auto', 'on' or 'off'", "enum"))
    return parsed, errors


def encode(pcm: bytes, rate: int, output_format: str) -> bytes | None:
    """``pcm`` (PCM16 mono at ``rate``) in ``output_format``; None for formats the fake
    does not produce (MP3, Opus)."""
    from gateway.media.resample import Resampler

    codec, _, rest = output_format.partition("_")
    if codec not in ("pcm", "ulaw", "alaw"):
        return None
    dst = int(rest.split("_")[0])
    r = Resampler(rate, dst)
    out = r.resample(pcm) + r.flush() if rate != dst else pcm
    if codec == "ulaw":
        return audioop.lin2ulaw(out, 2)
    if codec == "alaw":
        return audioop.lin2alaw(out, 2)
    return out


class FakeElevenLabsTTS(LoopbackASGIServer):
    """A protocol-faithful local ElevenLabs streaming TTS server.

    Args:
        api_key: the ``xi-api-key`` to require.
        voices: voice ids that exist (default: the gateway's default voice and "test-voice").
        chunk_ms: milliseconds of audio per streamed chunk.

    Attributes:
        base_url: ``"http://127.0.0.1:P"`` once entered (what the SDK's ``base_url`` takes).
        requests: valid requests: ``{"voice_id", "output_format", "body", "query"}``.
        api_keys: the ``xi-api-key`` of every request (None when absent).
        invalid_received: ``(request, errors)`` per 422.
        unsupported: valid requests for formats the fake does not produce (400).
        invalid_sent: error bodies that failed validation (a fake bug).
        unauthorized: requests answered 401.
        sent_audio: the audio bytes of the last stream, as encoded and sent.
        chunks_sent: chunks written so far (all streams).
        holding: set while a held stream waits for :meth:`release`.
    """

    def __init__(self, *, api_key: str = "xi-test-key-elevenlabs",
                 voices: set[str] | None = None, chunk_ms: int = 100) -> None:
        super().__init__()
        self.api_key = api_key
        self.voices = set(voices) if voices else {"JBFqnCBsd6RMkjVDRZzb", "test-voice"}
        self.chunk_ms = chunk_ms
        self.speech_pcm: bytes | None = None
        self.speech_rate = 8000
        self.requests: list[dict[str, Any]] = []
        self.api_keys: list[str | None] = []
        self.invalid_received: list[tuple[Any, Any]] = []
        self.unsupported: list[dict[str, Any]] = []
        self.invalid_sent: list[tuple[Any, str]] = []
        self.unauthorized = 0
        self.sent_audio = b""
        self.chunks_sent = 0
        self.disconnects = 0
        self.holding = asyncio.Event()
        self._hold_after: int | None = None
        self._hold = asyncio.Event()
        self._errors: deque[tuple[int, dict[str, Any]]] = deque()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold_after(self, chunks: int) -> None:
        """Make the next stream stop after ``chunks`` chunks until :meth:`release`."""
        self._hold_after = chunks
        self._hold = asyncio.Event()

    def release(self) -> None:
        self._hold.set()

    def reply_error(self, status: int, status_word: str, message: str) -> None:
        """Answer the next valid request ``status`` with ``{"detail": {status, message}}``."""
        self._errors.append((status, _detail(status_word, message)))

    def _stopping(self) -> None:
        self._hold.set()

    async def _respond(self, send: Send, status: int, body: dict[str, Any]) -> None:
        if status == 422:
            try:
                check_response(body, HttpValidationError)
            except InvalidMessage as exc:
                self.invalid_sent.append((body, str(exc)))
        await self.send_json(send, status, body, [(b"request-id", uuid.uuid4().hex.encode())])

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        raw = await request.body()
        path: str = scope["path"]
        parts = path[len(PATH_PREFIX):].split("/") if path.startswith(PATH_PREFIX) else []
        if scope["method"] != "POST" or len(parts) != 2 or parts[1] != "stream":
            await self._respond(send, 404, {"detail": "Not Found"})
            return
        voice_id = parts[0]
        key = request.headers.get("xi-api-key")
        self.api_keys.append(key)
        if key != self.api_key:
            self.unauthorized += 1
            await self._respond(send, 401, _detail("needs_authorization",
                                "Neither authorization header nor xi-api-key received, "
                                "please provide one.") if key is None
                                else _detail("invalid_api_key", "Invalid API key"))
            await self._notify()
            return
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        parsed, errors = check_stream_request(query, body)
        if errors:
            self.invalid_received.append(({"query": query, "body": body}, errors))
            await self._respond(send, 422, _validation_error(errors))
            await self._notify()
            return
        if voice_id not in self.voices:
            await self._respond(send, 404, _detail(
                "voice_not_found", f"A voice with the voice_id {voice_id} was not found."))
            return
        record = {"voice_id": voice_id, "output_format": parsed["output_format"],
                  "body": body, "query": query}
        pcm = self.speech_pcm
        if pcm is None:
            from tests.audio import speech

            pcm, self.speech_rate = speech("hello-world"), 8000
        audio = encode(pcm, self.speech_rate, parsed["output_format"])
        if audio is None:
            self.unsupported.append(record)
            await self._respond(send, 400, _detail(
                "unsupported_by_fake", f"this fake produces pcm_*, ulaw_8000 and alaw_8000 "
                f"only, not {parsed['output_format']}"))
            return
        self.requests.append(record)
        await self._notify()
        if self._errors:
            status, err = self._errors.popleft()
            await self._respond(send, status, err)
            return
        await self._stream(send, receive, audio, parsed["output_format"], len(body["text"]))

    async def _stream(self, send: Send, receive: Receive, audio: bytes, fmt: str,
                      characters: int) -> None:
        rate = int(fmt.split("_")[1])
        width = 2 if fmt.startswith("pcm") else 1
        step = rate * width * self.chunk_ms // 1000
        hold_after, self._hold_after = self._hold_after, None
        hold = self._hold
        self.sent_audio = b""
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"audio/pcm" if width == 2 else b"audio/basic"),
            (b"request-id", uuid.uuid4().hex.encode()),
            (b"x-character-count", str(characters).encode())]})
        disconnected = asyncio.Event()
        watcher = asyncio.ensure_future(watch_disconnect(receive, disconnected))
        try:
            for k, at in enumerate(range(0, len(audio), step)):
                if k == hold_after:
                    self.holding.set()
                    await self._notify()
                    ok = await pause(disconnected, hold)
                    self.holding.clear()
                    if not ok:
                        self.disconnects += 1
                        return
                if disconnected.is_set():
                    self.disconnects += 1
                    return
                chunk = audio[at:at + step]
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.sent_audio += chunk
                self.chunks_sent += 1
                await self._notify()
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self._notify()


__all__ = ["BODY_KEYS", "OUTPUT_FORMATS", "FakeElevenLabsTTS", "check_stream_request",
           "encode"]
