"""A local stand-in for OpenAI's audio endpoints: speech (TTS) and transcriptions (STT).

One ASGI app on uvicorn, run in the test's event loop on a free loopback port, serves

* ``POST /v1/audio/speech`` (https://platform.openai.com/docs/api-reference/audio/createSpeech):
  a JSON body validated against the SDK's own request type
  ``openai.types.audio.SpeechCreateParams`` (strict, unknown keys refused) plus the
  API's rules beyond the schema (``input`` at most 4096 characters, ``speed`` 0.25-4.0,
  a built-in voice name or ``{"id": ...}``, a known ``SpeechModel``, no
  ``instructions`` for ``tts-1``/``tts-1-hd``). The answer is the configured speech as
  headerless PCM16 LE mono 24 kHz (``response_format="pcm"``), streamed in
  ``chunk_ms`` pieces with chunked transfer encoding (no ``Content-Length``), as OpenAI
  streams audio while it is synthesised. Other ``response_format`` values and
  ``stream_format="sse"`` are valid API requests this fake does not serve: they are
  answered 400 with a message saying so and recorded in :attr:`unsupported`.
* ``POST /v1/audio/transcriptions``
  (https://platform.openai.com/docs/api-reference/audio/createTranscription): a
  ``multipart/form-data`` body (parsed with Starlette/python-multipart), its fields
  turned back into the SDK's params (``include[]`` -> ``include`` ...) and validated
  against ``TranscriptionCreateParamsNonStreaming`` / ``...Streaming`` (strict, unknown
  keys refused); rules beyond the schema: a known ``AudioModel``, ``json`` as the only
  response format for ``gpt-4o-*-transcribe``, ``include=["logprobs"]`` only with those
  models and ``json``, the file's extension one the API lists, a WAV file that parses
  (its rate/channels/width recorded). The answer is ``Transcription`` JSON, or with
  ``stream=true`` (not for ``whisper-1``, which ignores it) Server-Sent Events
  ``transcript.text.delta`` ... ``transcript.text.done``; every body/event is validated
  against the SDK's response models (``Transcription``, ``TranscriptionTextDeltaEvent``,
  ``TranscriptionTextDoneEvent``; strict, no unknown keys) before it is sent, and one
  that fails lands in :attr:`invalid_sent` instead.

Auth: ``Authorization: Bearer <api_key>`` is checked first on both endpoints; 401 with
OpenAI's error JSON otherwise (the presented key redacted, as OpenAI does). Errors are
``{"error": {"message", "type", "param", "code"}}`` validated as ``ErrorObject``.

Scripting: :attr:`speech_audio` (PCM16 24 kHz; default: an Asterisk recording resampled),
:meth:`hold_speech_after` (stop a speech stream after N chunks until :meth:`release`;
:attr:`holding` is set while it waits), :attr:`transcripts` (queued texts, one per
transcription request; default :attr:`transcript`), :meth:`reply_error` (the next
request on an endpoint gets an HTTP error).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import typing
import uuid
import wave
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from openai.types.audio import (
    SpeechModel,
    Transcription,
    TranscriptionTextDeltaEvent,
    TranscriptionTextDoneEvent,
)
from openai.types.audio.speech_create_params import SpeechCreateParams, Voice
from openai.types.audio.transcription_create_params import (
    TranscriptionCreateParamsNonStreaming,
    TranscriptionCreateParamsStreaming,
)
from openai.types.audio_model import AudioModel
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, with_config
from starlette.datastructures import UploadFile
from starlette.requests import Request

from tests.fakes.asgi import LoopbackASGIServer, pause, watch_disconnect
from tests.fakes.fake_chat_completions import InvalidMessage, check_error

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

SPEECH_PATH = "/v1/audio/speech"
TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
#: ``response_format="pcm"``: PCM16 LE mono at this rate, no header.
PCM_RATE = 24000
SPEECH_MODELS = frozenset(typing.get_args(SpeechModel))
AUDIO_MODELS = frozenset(typing.get_args(AudioModel))
VOICES = frozenset(typing.get_args(typing.get_args(Voice)[1]))
#: Models that return logprobs and take only ``response_format="json"``.
GPT4O_TRANSCRIBE = frozenset({"gpt-4o-transcribe", "gpt-4o-mini-transcribe",
                              "gpt-4o-mini-transcribe-2025-12-15"})
FILE_EXTENSIONS = frozenset({"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"})


@with_config(ConfigDict(extra="forbid"))
class StrictSpeechCreateParams(SpeechCreateParams):
    """The SDK's speech request type with unknown keys refused."""


@with_config(ConfigDict(extra="forbid", arbitrary_types_allowed=True))
class StrictTranscriptionParams(TranscriptionCreateParamsNonStreaming):
    """The SDK's non-streaming transcription request type, unknown keys refused."""


@with_config(ConfigDict(extra="forbid", arbitrary_types_allowed=True))
class StrictTranscriptionParamsStreaming(TranscriptionCreateParamsStreaming):
    """The SDK's streaming transcription request type, unknown keys refused."""


_SPEECH = TypeAdapter(StrictSpeechCreateParams)
_TRANSCRIPTION = TypeAdapter(StrictTranscriptionParams)
_TRANSCRIPTION_STREAMING = TypeAdapter(StrictTranscriptionParamsStreaming)


# -- checks ---------------------------------------------------------------------------
def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                     for e in exc.errors(include_url=False)[:5])


def check_speech_request(raw: bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Validate a ``/v1/audio/speech`` body; return it as a dict.

    Raises:
        InvalidMessage: not JSON, a schema violation, or an API rule broken.
    """
    if isinstance(raw, bytes | str):
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidMessage("the body is not valid JSON") from None
    else:
        body = dict(raw)
    if not isinstance(body, dict):
        raise InvalidMessage("the body must be a JSON object")
    try:
        _SPEECH.validate_python(body, strict=True)
    except ValidationError as exc:
        raise InvalidMessage(_errors(exc)) from None
    if body["model"] not in SPEECH_MODELS:
        raise InvalidMessage(f"model: {body['model']!r} is not a speech model "
                             f"({sorted(SPEECH_MODELS)})")
    voice = body["voice"]
    if isinstance(voice, str) and voice not in VOICES:
        raise InvalidMessage(f"voice: {voice!r} is not a built-in voice ({sorted(VOICES)})")
    if len(body["input"]) > 4096:
        raise InvalidMessage(f"input: {len(body['input'])} characters; at most 4096")
    if not body["input"].strip():
        raise InvalidMessage("input: empty")
    speed = body.get("speed")
    if speed is not None and not 0.25 <= speed <= 4.0:
        raise InvalidMessage(f"speed: {speed} is outside 0.25..4.0")
    if body.get("instructions") and body["model"] in ("tts-1", "tts-1-hd"):
        raise InvalidMessage(f"instructions: not supported by {body['model']}")
    return body


def form_to_params(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Multipart fields (name, value pairs, in order) as the SDK's params: repeated
    ``k[]`` -> a list, ``k[s]`` -> a dict, ``stream`` -> bool, ``temperature`` -> float."""
    params: dict[str, Any] = {}
    for key, value in items:
        if key.endswith("[]"):
            params.setdefault(key[:-2], []).append(value)
        elif "[" in key and key.endswith("]"):
            outer, inner = key[:-1].split("[", 1)
            params.setdefault(outer, {})[inner] = value
        else:
            params[key] = value
    if "stream" in params:
        params["stream"] = {"true": True, "false": False}.get(str(params["stream"]),
                                                               params["stream"])
    if "temperature" in params:
        with contextlib.suppress(ValueError):
            params["temperature"] = float(params["temperature"])
    if isinstance(params.get("chunking_strategy"), dict):
        cs = params["chunking_strategy"]
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            if key in cs:
                cs[key] = int(cs[key])
        if "threshold" in cs:
            cs["threshold"] = float(cs["threshold"])
    return params


def check_transcription_request(params: Mapping[str, Any], file_name: str | None,
                                file_data: bytes | None) -> dict[str, Any]:
    """Validate a transcription request (fields from :func:`form_to_params`; the file
    part's name and bytes). Returns the params with ``file`` replaced by a summary dict
    (``name``, ``bytes``, and for WAV ``rate``/``channels``/``width``/``pcm``).

    Raises:
        InvalidMessage: a schema violation or an API rule broken.
    """
    body = dict(params)
    if file_data is None:
        raise InvalidMessage("file: a file part is required")
    body["file"] = file_data
    adapter = _TRANSCRIPTION_STREAMING if body.get("stream") is True else _TRANSCRIPTION
    try:
        adapter.validate_python(body, strict=True)
    except ValidationError as exc:
        raise InvalidMessage(_errors(exc)) from None
    model = body["model"]
    if model not in AUDIO_MODELS:
        raise InvalidMessage(f"model: {model!r} is not a transcription model")
    fmt = body.get("response_format", "json")
    if model in GPT4O_TRANSCRIBE and fmt != "json":
        raise InvalidMessage(f"response_format: {model} supports only 'json', not {fmt!r}")
    if "logprobs" in (body.get("include") or []) and (model not in GPT4O_TRANSCRIBE
                                                      or fmt != "json"):
        raise InvalidMessage(f"include: logprobs needs json and a gpt-4o transcribe model "
                             f"(not {model})")
    ext = (file_name or "").rsplit(".", 1)[-1].lower() if "." in (file_name or "") else ""
    if ext not in FILE_EXTENSIONS:
        raise InvalidMessage(f"file: unrecognized file format {file_name!r}; supported "
                             f"formats: {sorted(FILE_EXTENSIONS)}")
    info: dict[str, Any] = {"name": file_name, "bytes": len(file_data)}
    if ext == "wav":
        try:
            with wave.open(io.BytesIO(file_data), "rb") as w:
                info.update(rate=w.getframerate(), channels=w.getnchannels(),
                            width=w.getsampwidth(), pcm=w.readframes(w.getnframes()))
        except (wave.Error, EOFError) as exc:
            raise InvalidMessage(f"file: {file_name!r} is not a valid WAV file ({exc})") from None
    body["file"] = info
    return body


def no_unknown_keys(model: Any, path: str) -> None:
    """Raise when a validated SDK model (they allow extra keys) holds keys its type lacks.

    Raises:
        InvalidMessage: naming the path of the first unknown key.
    """
    if isinstance(model, BaseModel):
        if model.model_extra:
            raise InvalidMessage(f"{path or '(body)'}: unknown key(s) {sorted(model.model_extra)}")
        for name in type(model).model_fields:
            no_unknown_keys(getattr(model, name), f"{path}.{name}" if path else name)
    elif isinstance(model, list):
        for i, item in enumerate(model):
            no_unknown_keys(item, f"{path}[{i}]")


def check_response(data: Mapping[str, Any], cls: type[BaseModel]) -> BaseModel:
    """Validate a response body or event as the SDK model ``cls`` (strict, no unknown keys).

    Raises:
        InvalidMessage: it does not validate.
    """
    try:
        model = cls.model_validate(dict(data), strict=True)
    except ValidationError as exc:
        raise InvalidMessage(_errors(exc)) from None
    no_unknown_keys(model, "")
    return model


def _error_body(message: str, type_: str = "invalid_request_error", code: str | None = None,
                param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _redact(key: str) -> str:
    return key[:3] + "*" * max(len(key) - 7, 3) + key[-4:] if len(key) > 8 else "***"


def default_speech() -> bytes:
    """An Asterisk recording ("hello world"), PCM16 mono resampled 8 -> 24 kHz."""
    from gateway.media.resample import Resampler
    from tests.audio import speech

    r = Resampler(8000, PCM_RATE)
    return r.resample(speech("hello-world")) + r.flush()


class FakeOpenAIAudio(LoopbackASGIServer):
    """A protocol-faithful local OpenAI audio server (speech + transcriptions).

    Args:
        api_key: the bearer token to require.
        transcript: what every transcription returns unless :attr:`transcripts` has one.
        chunk_ms: milliseconds of audio per streamed speech chunk.

    Attributes:
        base_url: ``"http://127.0.0.1:P/v1"`` once entered.
        speech_audio: PCM16 24 kHz mono the speech endpoint streams (None: the
            Asterisk "hello world" recording, resampled).
        transcripts: texts for the next transcriptions, one each (then ``transcript``).
        logprob: the logprob of every token when ``include=["logprobs"]``.
        delta_words: words per ``transcript.text.delta`` event when streaming.
        speech_requests: valid speech bodies, in order.
        transcription_requests: valid transcription params (``file`` summarised, WAV
            decoded: ``rate``, ``channels``, ``width``, ``pcm``), in order.
        authorizations: the ``Authorization`` header of every request (None if absent).
        invalid_received: ``(body, reason)`` per refused request (400).
        unsupported: ``(body, reason)`` per valid request the fake does not serve (400).
        invalid_sent: ``(body, reason)`` per response that failed validation (not sent).
        unauthorized: requests answered 401.
        speech_chunks_sent: speech chunks written so far (all streams).
        disconnects: speech streams the client left before the end.
        holding: set while a held speech stream waits for :meth:`release`.
    """

    def __init__(self, *, api_key: str = "sk-test-openai-audio",
                 transcript: str = "hello world", chunk_ms: int = 100) -> None:
        super().__init__()
        self.api_key = api_key
        self.transcript = transcript
        self.chunk_ms = chunk_ms
        self.speech_audio: bytes | None = None
        self.transcripts: deque[str] = deque()
        self.logprob = -0.05
        self.delta_words = 1
        self.speech_requests: list[dict[str, Any]] = []
        self.transcription_requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.invalid_received: list[tuple[Any, str]] = []
        self.unsupported: list[tuple[Any, str]] = []
        self.invalid_sent: list[tuple[Any, str]] = []
        self.unauthorized = 0
        self.speech_chunks_sent = 0
        self.disconnects = 0
        self.holding = asyncio.Event()
        self._hold_after: int | None = None
        self._hold = asyncio.Event()
        self._errors: dict[str, deque[tuple[int, dict[str, Any]]]] = {
            SPEECH_PATH: deque(), TRANSCRIPTIONS_PATH: deque()}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ------------------------------------------------------------------
    def hold_speech_after(self, chunks: int) -> None:
        """Make the next speech stream stop after ``chunks`` chunks until :meth:`release`."""
        self._hold_after = chunks
        self._hold = asyncio.Event()

    def release(self) -> None:
        """Let a held speech stream go on."""
        self._hold.set()

    def reply_error(self, path: str, status: int, message: str, *,
                    type: str = "invalid_request_error", code: str | None = None) -> None:
        """The next request to ``path`` (:data:`SPEECH_PATH` or
        :data:`TRANSCRIPTIONS_PATH`) is answered ``status`` with OpenAI's error JSON."""
        self._errors[path].append((status, _error_body(message, type, code)))

    def _stopping(self) -> None:
        self._hold.set()

    # -- ASGI -------------------------------------------------------------------------
    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method != "POST" or path not in (SPEECH_PATH, TRANSCRIPTIONS_PATH):
            await self._send_error(send, 404, _error_body(f"Invalid URL ({method} {path})"))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        auth = headers.get("authorization")
        self.authorizations.append(auth)
        request = Request(scope, receive)
        if auth != f"Bearer {self.api_key}":
            await request.body()
            self.unauthorized += 1
            await self._send_error(send, 401, self._auth_error(auth))
            await self._notify()
            return
        if path == SPEECH_PATH:
            await self._speech(request, receive, send)
        else:
            await self._transcription(request, receive, send)
        await self._notify()

    def _auth_error(self, auth: str | None) -> dict[str, Any]:
        if not auth:
            return _error_body(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        presented = auth.removeprefix("Bearer ").strip()
        return _error_body(f"Incorrect API key provided: {_redact(presented)}. You can find "
                           "your API key at https://platform.openai.com/account/api-keys.",
                           code="invalid_api_key")

    async def _send_error(self, send: Send, status: int, body: dict[str, Any]) -> None:
        try:
            check_error(body)
        except InvalidMessage as exc:
            self.invalid_sent.append((body, str(exc)))
        await self.send_json(send, status, body,
                             [(b"x-request-id", f"req_{uuid.uuid4().hex}".encode())])

    # -- speech -------------------------------------------------------------------------
    async def _speech(self, request: Request, receive: Receive, send: Send) -> None:
        raw = await request.body()
        try:
            body = check_speech_request(raw)
        except InvalidMessage as exc:
            try:
                received: Any = json.loads(raw)
            except ValueError:
                received = raw
            self.invalid_received.append((received, str(exc)))
            await self._send_error(send, 400, _error_body(str(exc)))
            return
        fmt = body.get("response_format", "mp3")
        if fmt != "pcm" or body.get("stream_format", "audio") != "audio":
            why = (f"this fake serves response_format 'pcm' with stream_format 'audio' only "
                   f"(got {fmt!r}, {body.get('stream_format', 'audio')!r})")
            self.unsupported.append((body, why))
            await self._send_error(send, 400, _error_body(why, param="response_format"))
            return
        self.speech_requests.append(body)
        if self._errors[SPEECH_PATH]:
            status, err = self._errors[SPEECH_PATH].popleft()
            await self._send_error(send, status, err)
            return
        audio = self.speech_audio if self.speech_audio is not None else default_speech()
        step = PCM_RATE * 2 * self.chunk_ms // 1000
        hold_after, self._hold_after = self._hold_after, None
        hold = self._hold
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"audio/pcm"),
            (b"x-request-id", f"req_{uuid.uuid4().hex}".encode())]})
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
                await send({"type": "http.response.body", "body": audio[at:at + step],
                            "more_body": True})
                self.speech_chunks_sent += 1
                await self._notify()
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    # -- transcriptions -----------------------------------------------------------------
    async def _transcription(self, request: Request, receive: Receive, send: Send) -> None:
        try:
            form = await request.form()
        except Exception as exc:
            self.invalid_received.append((None, f"multipart: {exc}"))
            await self._send_error(send, 400, _error_body(f"could not parse multipart: {exc}"))
            return
        items: list[tuple[str, Any]] = []
        file_name = file_data = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == "file" and file_data is None:
                    file_name, file_data = value.filename, await value.read()
                else:
                    items.append((key, value.filename))  # a file where none belongs
            else:
                items.append((key, value))
        params = form_to_params(items)
        try:
            body = check_transcription_request(params, file_name, file_data)
        except InvalidMessage as exc:
            self.invalid_received.append((params, str(exc)))
            await self._send_error(send, 400, _error_body(str(exc)))
            return
        self.transcription_requests.append(body)
        if self._errors[TRANSCRIPTIONS_PATH]:
            status, err = self._errors[TRANSCRIPTIONS_PATH].popleft()
            await self._send_error(send, status, err)
            return
        text = self.transcripts.popleft() if self.transcripts else self.transcript
        model = body["model"]
        logprobs = ([{"token": w, "logprob": self.logprob, "bytes": list(w.encode())}
                     for w in _tokens(text)] if "logprobs" in (body.get("include") or [])
                    else None)
        seconds = 0.0
        if "rate" in body["file"]:
            f = body["file"]
            seconds = len(f["pcm"]) / max(f["rate"] * f["channels"] * f["width"], 1)
        if model in GPT4O_TRANSCRIBE or model == "gpt-transcribe":
            audio_tokens = max(1, round(seconds * 10))
            usage: dict[str, Any] = {
                "type": "tokens", "input_tokens": audio_tokens,
                "output_tokens": len(_tokens(text)),
                "total_tokens": audio_tokens + len(_tokens(text)),
                "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0}}
        else:
            usage = {"type": "duration", "seconds": round(seconds, 3)}
        if body.get("stream") is True and model != "whisper-1":
            await self._stream_transcript(send, text, logprobs, usage)
            return
        result: dict[str, Any] = {"text": text, "usage": usage}
        if logprobs is not None:
            result["logprobs"] = logprobs
        try:
            check_response(result, Transcription)
        except InvalidMessage as exc:
            self.invalid_sent.append((result, str(exc)))
            await self._send_error(send, 500, _error_body("fake bug", "server_error"))
            return
        await self.send_json(send, 200, result,
                             [(b"x-request-id", f"req_{uuid.uuid4().hex}".encode())])

    async def _stream_transcript(self, send: Send, text: str, logprobs: list[Any] | None,
                                 usage: dict[str, Any]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"x-request-id", f"req_{uuid.uuid4().hex}".encode())]})
        tokens = _tokens(text)
        n = max(self.delta_words, 1)
        events: list[tuple[dict[str, Any], type[BaseModel]]] = []
        for i in range(0, len(tokens), n):
            event: dict[str, Any] = {"type": "transcript.text.delta",
                                     "delta": "".join(tokens[i:i + n])}
            if logprobs is not None:
                event["logprobs"] = [{**lp, "bytes": [int(b) for b in lp["bytes"]]}
                                     for lp in logprobs[i:i + n]]
            events.append((event, TranscriptionTextDeltaEvent))
        done: dict[str, Any] = {"type": "transcript.text.done", "text": text}
        if logprobs is not None:
            done["logprobs"] = logprobs
        if usage.get("type") == "tokens":
            done["usage"] = usage
        events.append((done, TranscriptionTextDoneEvent))
        for event, cls in events:
            try:
                check_response(event, cls)
            except InvalidMessage as exc:
                self.invalid_sent.append((event, str(exc)))
                continue
            await send({"type": "http.response.body",
                        "body": b"data: " + json.dumps(event).encode() + b"\n\n",
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _tokens(text: str) -> list[str]:
    """``text`` in word tokens, each with its leading space (joined they give it back)."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


__all__ = [
    "PCM_RATE",
    "SPEECH_PATH",
    "TRANSCRIPTIONS_PATH",
    "FakeOpenAIAudio",
    "InvalidMessage",
    "LoopbackASGIServer",
    "check_response",
    "check_speech_request",
    "check_transcription_request",
    "default_speech",
    "form_to_params",
    "no_unknown_keys",
]
