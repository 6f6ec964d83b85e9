"""A local stand-in for an OpenAI-compatible Chat Completions server (streaming).

One small ASGI app on uvicorn, run in the test's event loop on a free loopback port,
serves ``POST /v1/chat/completions`` the way OpenAI does
(https://platform.openai.com/docs/api-reference/chat/create, streaming:
https://platform.openai.com/docs/api-reference/chat-streaming)::

    async with FakeChatCompletions(api_key="sk-test") as fake:
        fake.reply_text("Hello there. How can I help?")
        llm = OpenAICompatibleLLM("gpt-test", base_url=fake.base_url, api_key="sk-test")

Requests:

* ``Authorization: Bearer <api_key>`` is checked first (when ``api_key`` is set):
  401 with OpenAI's error JSON otherwise, like OpenAI's own wording (key redacted).
* The body is validated against the SDK's own request type,
  ``openai.types.chat.completion_create_params.CompletionCreateParamsStreaming``,
  with pydantic in strict mode and unknown keys refused at every level (see
  :func:`check_request`), plus the conversation rules OpenAI enforces beyond the
  schema: every ``tool`` message answers a ``tool_calls`` id of the assistant message
  before it, every such id is answered before the next other message, tool names are
  unique and match ``^[a-zA-Z0-9_-]{1,64}$``. Only streaming requests are served.
  A valid body is recorded in :attr:`requests`; an invalid one in
  :attr:`invalid_received` and answered 400 with OpenAI's error JSON
  ``{"error": {"message", "type", "param", "code"}}``.

Answers are Server-Sent Events ``data: <chat.completion.chunk JSON>\\n\\n`` ... then
``data: [DONE]\\n\\n``, in OpenAI's order: a first chunk with ``delta.role``, the
content pieces, the tool-call pieces (the first piece of each call carries ``id``,
``type`` and ``function.name`` with ``arguments: ""``, later pieces only ``index`` and
more ``arguments``), a chunk with an empty delta and ``finish_reason``, and with
``stream_options.include_usage`` a last chunk with ``choices: []`` and ``usage`` (every
other chunk then has ``usage: null``). Every chunk is validated as
``openai.types.chat.ChatCompletionChunk`` (strict, no unknown keys) before it is sent;
one that fails is not sent and lands in :attr:`invalid_sent`.

Scripting: :meth:`reply_text`, :meth:`reply_tool_call`, :meth:`reply_tool_calls`,
:meth:`reply_error` (an HTTP error) and :meth:`reply_stream_error` (an ``error``
event mid-stream) queue answers consumed by the next requests in order; with none
queued the answer echoes the last user message, ``"You said: <text>."``. Fault
injection: ``first_token_delay_s`` / ``chunk_delay_s``, ``hold_after`` (stop after N
content pieces until :meth:`release`), ``cut_after`` (end the body after N content
pieces, with no ``finish_reason`` and no ``[DONE]``). A client that goes away before the
end is counted in :attr:`disconnects`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletionChunk
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from openai.types.shared import ErrorObject
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, with_config

from tests.fakes.asgi import LoopbackASGIServer

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

PATH = "/v1/chat/completions"
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


class InvalidMessage(AssertionError):
    """A request or a chunk breaks the Chat Completions types or rules."""


@with_config(ConfigDict(extra="forbid"))
class StrictCompletionCreateParamsStreaming(CompletionCreateParamsStreaming):
    """The SDK's streaming request type with unknown keys refused at every level.

    ``extra="forbid"`` set here reaches the nested TypedDicts (messages, tools ...),
    which carry no config of their own.
    """


_REQUEST = TypeAdapter(StrictCompletionCreateParamsStreaming)


# -- checks ---------------------------------------------------------------------------
def check_request(raw: bytes | str | Mapping[str, Any], *,
                  allow_extra: Iterable[str] = ()) -> dict[str, Any]:
    """Validate one request body; return it as a dict.

    Args:
        raw: the body (JSON text) or the decoded object.
        allow_extra: top-level keys accepted beside the SDK's (server-specific
            ``extra_body`` fields such as ``"top_k"``); not validated.

    Raises:
        InvalidMessage: not JSON, not an object, a schema violation, or a
            conversation rule broken; the message says where.
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
    allowed = set(allow_extra)
    checked = {k: v for k, v in body.items() if k not in allowed}
    try:
        # Python mode on the decoded JSON: in JSON mode pydantic takes a JSON string for
        # ``Union[str, Iterable[part]]`` as an iterable of characters.
        validated = _REQUEST.validate_python(checked, strict=True)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc)) from None
    _materialise(validated)
    _check_conversation(body["messages"])
    _check_tools(body.get("tools") or [])
    return body


def _materialise(value: Any, path: str = "") -> Any:
    """Walk a validated value, draining pydantic's lazy ``ValidatorIterator``s (the
    SDK types declare lists as ``Iterable[...]``, which validate only when iterated).

    Raises:
        InvalidMessage: an item fails; the message starts with its path.
    """
    if isinstance(value, Mapping):
        return {k: _materialise(v, f"{path}.{k}" if path else str(k))
                for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool | type(None)):
        return value
    if isinstance(value, Iterable):
        items = []
        iterator = iter(value)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except ValidationError as exc:
                raise InvalidMessage(_describe(exc, path)) from None
            items.append(_materialise(item, f"{path}[{len(items)}]"))
        return items
    return value


def _describe(exc: ValidationError, path: str = "") -> str:
    """The errors of a failed validation, as ``where: what``; of a union, only the
    branch that came closest (no ``role``/``type`` literal missed, fewest errors), so
    the real mistake shows."""
    errors = exc.errors(include_url=False)
    branches: dict[tuple[Any, ...], list[Any]] = {}
    plain = []
    for e in errors:
        at = next((i for i, p in enumerate(e["loc"]) if isinstance(p, str) and p[:1].isupper()),
                  None)
        if at is None:
            plain.append(e)
        else:
            branches.setdefault(tuple(e["loc"][:at + 1]), []).append(e)
    def distance(errs: list[Any]) -> tuple[bool, int]:  # a literal miss: the wrong branch
        return any(e["type"] == "literal_error" for e in errs), len(errs)

    chosen = list(plain)
    if branches:
        best = min(branches.values(), key=distance)
        if distance(best)[0]:  # every branch missed a literal: say what all of them take
            best = _merged_literals(branches)
        chosen += best

    def where(loc: tuple[Any, ...]) -> str:
        parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc
                 if not (isinstance(p, str) and p[:1].isupper())]
        text = (path + "".join(parts)).lstrip(".")
        return text or "(body)"

    lines = [f"{where(tuple(e['loc']))}: {e['msg']}" for e in chosen[:6]]
    more = len(chosen) - len(lines)
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


def _merged_literals(branches: dict[tuple[Any, ...], list[Any]]) -> list[Any]:
    """One literal error per field, listing the values every union branch accepts."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, errs in branches.items():
        for e in errs:
            if e["type"] != "literal_error":
                continue
            tail = tuple(e["loc"][len(key):])
            entry = merged.setdefault(key[:-1] + tail, {**e, "loc": key[:-1] + tail,
                                                        "expected": []})
            entry["expected"].append(str(e.get("ctx", {}).get("expected", "?")))
    for entry in merged.values():
        entry["msg"] = "Input should be " + " or ".join(entry["expected"])
    return list(merged.values())


def _check_conversation(messages: Sequence[Mapping[str, Any]]) -> None:
    if not messages:
        raise InvalidMessage("messages: [] is too short (at least one message)")
    pending: list[str] = []  # tool_call ids of the last assistant message, unanswered
    answerable: set[str] = set()
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if call_id not in answerable:
                raise InvalidMessage(
                    f"messages[{i}]: messages with role 'tool' must be a response to a "
                    f"preceding message with 'tool_calls' (no tool call {call_id!r})")
            if call_id in pending:
                pending.remove(call_id)
            continue
        if pending:
            raise InvalidMessage(
                f"messages[{i}]: an assistant message with 'tool_calls' must be followed "
                f"by tool messages responding to each 'tool_call_id'; unanswered: {pending}")
        answerable = set()
        if role == "assistant":
            ids = [c.get("id") for c in msg.get("tool_calls") or []]
            pending = [c for c in ids if isinstance(c, str)]
            answerable = set(pending)
    if pending:
        raise InvalidMessage(
            "an assistant message with 'tool_calls' must be followed by tool messages "
            f"responding to each 'tool_call_id'; unanswered: {pending}")


def _check_tools(tools: Sequence[Mapping[str, Any]]) -> None:
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        fn = tool.get("function") if tool.get("type") == "function" else tool.get("custom")
        name = (fn or {}).get("name", "")
        if not _TOOL_NAME.fullmatch(name):
            raise InvalidMessage(f"tools[{i}].function.name: {name!r} does not match "
                                 "'^[a-zA-Z0-9_-]{1,64}$'")
        if name in seen:
            raise InvalidMessage(f"tools[{i}]: duplicate tool name {name!r}")
        seen.add(name)


def _no_extras(model: Any, path: str) -> None:
    """Raise when a model (the SDK's allow extra keys) holds keys its type lacks."""
    if isinstance(model, BaseModel):
        if model.model_extra:
            raise InvalidMessage(f"{path or '(chunk)'}: unknown key(s) {sorted(model.model_extra)}")
        for name in type(model).model_fields:
            _no_extras(getattr(model, name), f"{path}.{name}" if path else name)
    elif isinstance(model, list):
        for i, item in enumerate(model):
            _no_extras(item, f"{path}[{i}]")


def check_chunk(data: Mapping[str, Any]) -> ChatCompletionChunk:
    """Validate one ``chat.completion.chunk`` as ``ChatCompletionChunk`` (strict, no
    unknown keys); return the model.

    Raises:
        InvalidMessage: it is not a valid chunk.
    """
    try:
        chunk = ChatCompletionChunk.model_validate(dict(data), strict=True)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc)) from None
    _no_extras(chunk, "")
    return chunk


def check_error(data: Mapping[str, Any]) -> ErrorObject:
    """Validate an ``{"error": {...}}`` body's inner object as ``ErrorObject``.

    Raises:
        InvalidMessage: it is not OpenAI's error shape.
    """
    if set(data) != {"error"} or not isinstance(data["error"], Mapping):
        raise InvalidMessage("an error body is exactly {'error': {...}}")
    try:
        err = ErrorObject.model_validate(dict(data["error"]), strict=True)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc)) from None
    _no_extras(err, "error")
    missing = {"message", "type", "param", "code"} - set(data["error"])
    if missing:
        raise InvalidMessage(f"error: missing {sorted(missing)}")
    return err


# -- scripted replies -------------------------------------------------------------------
@dataclass
class _Reply:
    text: str = ""
    chunk_words: int = 2
    first_token_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    hold: asyncio.Event | None = None
    hold_after: int | None = None
    cut_after: int | None = None
    finish_reason: str = "stop"
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)  # id, name, args
    chunk_chars: int = 8
    status: int = 200
    error: dict[str, Any] | None = None
    stream_error: dict[str, Any] | None = None


def _error_body(message: str, type_: str, code: str | None = None,
                param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _error_type(status: int) -> str:
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return {403: "permission_error"}.get(status, "invalid_request_error")


def _redact(key: str) -> str:
    return key[:3] + "*" * max(len(key) - 7, 3) + key[-4:] if len(key) > 8 else "***"


def split_words(text: str, per_chunk: int) -> list[str]:
    """``text`` in pieces of ``per_chunk`` words, each with its leading space (the
    pieces joined give ``text`` back)."""
    words = re.findall(r"\s*\S+", text)
    if words and text[len("".join(words)):]:
        words[-1] += text[len("".join(words)):]  # trailing whitespace
    n = max(per_chunk, 1)
    return ["".join(words[i:i + n]) for i in range(0, len(words), n)]


class FakeChatCompletions(LoopbackASGIServer):
    """A protocol-faithful local OpenAI-compatible Chat Completions server.

    Args:
        api_key: the bearer token to require; None accepts any request, with or without
            ``Authorization`` (like a local llama.cpp or Ollama server).
        allow_extra: top-level body keys accepted beside the SDK's types
            (``extra_body`` fields of local servers, e.g. ``"top_k"``).

    Attributes:
        base_url: ``"http://127.0.0.1:P/v1"`` once entered.
        requests: every valid request body (dict), in order.
        authorizations: the ``Authorization`` header of every request to the
            endpoint (None when absent), in order.
        invalid_received: ``(body, reason)`` per refused body (400).
        invalid_sent: ``(chunk, reason)`` per chunk or error body that failed to
            validate (not sent); non-empty means the fake has a bug.
        sent_chunks: every chunk sent, as the JSON dicts on the wire.
        unauthorized: requests answered 401.
        disconnects: streams the client closed before the end.
    """

    def __init__(self, *, api_key: str | None = None, allow_extra: Iterable[str] = ()) -> None:
        super().__init__()
        self.api_key = api_key
        self.allow_extra = frozenset(allow_extra)
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.invalid_received: list[tuple[Any, str]] = []
        self.invalid_sent: list[tuple[Any, str]] = []
        self.sent_chunks: list[dict[str, Any]] = []
        self.unauthorized = 0
        self.disconnects = 0
        self._replies: deque[_Reply] = deque()
        self._holds: deque[asyncio.Event] = deque()

    # -- lifecycle --------------------------------------------------------------------
    def _stopping(self) -> None:
        for hold in self._holds:
            hold.set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ----------------------------------------------------------------------
    def reply_text(self, text: str, chunk_words: int = 2, first_token_delay_s: float = 0.0, *,
                   chunk_delay_s: float = 0.0, hold_after: int | None = None,
                   cut_after: int | None = None, finish_reason: str = "stop") -> None:
        """Queue a text answer streamed ``chunk_words`` words per chunk.

        Args:
            text: the assistant text.
            chunk_words: words per content chunk.
            first_token_delay_s: seconds between the response headers and the first chunk.
            chunk_delay_s: seconds between content chunks.
            hold_after: after this many content chunks, wait for :meth:`release`.
            cut_after: after this many content chunks, end the body (no
                ``finish_reason``, no ``[DONE]``).
            finish_reason: ``"stop"``, ``"length"`` or ``"content_filter"``.
        """
        hold = None
        if hold_after is not None:
            hold = asyncio.Event()
            self._holds.append(hold)
        self._replies.append(_Reply(text=text, chunk_words=chunk_words,
                                    first_token_delay_s=first_token_delay_s,
                                    chunk_delay_s=chunk_delay_s, hold=hold,
                                    hold_after=hold_after, cut_after=cut_after,
                                    finish_reason=finish_reason))

    def reply_tool_call(self, name: str, arguments: Mapping[str, Any], *,
                        call_id: str | None = None, text: str = "",
                        chunk_chars: int = 8) -> str:
        """Queue an answer calling one tool; return its ``call_...`` id.

        Args:
            name: the function name.
            arguments: the arguments, sent as ``json.dumps(arguments)`` in pieces of
                ``chunk_chars`` characters.
            call_id: the tool call id (default: a fresh ``call_...``).
            text: assistant text streamed before the call.
            chunk_chars: characters of ``arguments`` per chunk.
        """
        return self.reply_tool_calls([(name, arguments)], ids=[call_id] if call_id else None,
                                     text=text, chunk_chars=chunk_chars)[0]

    def reply_tool_calls(self, calls: Sequence[tuple[str, Mapping[str, Any]]], *,
                         ids: Sequence[str] | None = None, text: str = "",
                         chunk_chars: int = 8) -> list[str]:
        """Queue an answer calling several tools (parallel tool calls); return the ids."""
        made = list(ids) if ids else [f"call_{uuid.uuid4().hex[:24]}" for _ in calls]
        self._replies.append(_Reply(
            text=text, chunk_chars=chunk_chars, finish_reason="tool_calls",
            tool_calls=[(cid, name, json.dumps(dict(args)))
                        for cid, (name, args) in zip(made, calls, strict=True)]))
        return made

    def reply_error(self, status: int, message: str, *, type: str | None = None,
                    code: str | None = None) -> None:
        """Queue an HTTP error answer with OpenAI's error JSON."""
        self._replies.append(_Reply(status=status, error=_error_body(
            message, type or _error_type(status), code)))

    def reply_stream_error(self, message: str, *, text: str = "", type: str = "server_error",
                           code: str | None = None) -> None:
        """Queue a stream that sends ``text`` and then an ``error`` event, and ends."""
        self._replies.append(_Reply(text=text, stream_error=_error_body(message, type, code)))

    def release(self) -> None:
        """Let the oldest held stream (``hold_after``) go on."""
        for hold in self._holds:
            if not hold.is_set():
                hold.set()
                return

    # -- waiting --------------------------------------------------------------------------
    async def wait_until(self, cond: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until ``cond()`` holds (re-checked after every request and stream end)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(cond)

    async def wait_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``n`` valid requests arrived; return :attr:`requests`."""
        await self.wait_until(lambda: len(self.requests) >= n, timeout=timeout)
        return self.requests

    # -- ASGI ---------------------------------------------------------------------------
    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        if (method, path) != ("POST", PATH):
            await self._send_error(send, 404, _error_body(
                f"Invalid URL ({method} {path})", "invalid_request_error"))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        auth = headers.get("authorization")
        self.authorizations.append(auth)
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            self.unauthorized += 1
            await self._send_error(send, 401, self._auth_error(auth))
            await self._notify()
            return
        try:
            data = check_request(bytes(body), allow_extra=self.allow_extra)
        except InvalidMessage as exc:
            try:
                received: Any = json.loads(body)
            except ValueError:
                received = bytes(body)
            self.invalid_received.append((received, str(exc)))
            await self._send_error(send, 400, _error_body(str(exc), "invalid_request_error"))
            await self._notify()
            return
        self.requests.append(data)
        await self._notify()
        reply = self._replies.popleft() if self._replies else _Reply(text=_echo(data))
        if reply.error is not None:
            await self._send_error(send, reply.status, reply.error)
            return
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.ensure_future(watch())
        try:
            done = await self._stream(send, reply, data, disconnected)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if not done:
            self.disconnects += 1
        await self._notify()

    def _auth_error(self, auth: str | None) -> dict[str, Any]:
        if not auth:
            return _error_body(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error")
        presented = auth.removeprefix("Bearer ").strip()
        return _error_body(f"Incorrect API key provided: {_redact(presented)}. You can find "
                           "your API key at https://platform.openai.com/account/api-keys.",
                           "invalid_request_error", "invalid_api_key")

    async def _send_error(self, send: Send, status: int, body: dict[str, Any]) -> None:
        try:
            check_error(body)
        except InvalidMessage as exc:
            self.invalid_sent.append((body, str(exc)))
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", f"req_{uuid.uuid4().hex}".encode())]})
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    async def _stream(self, send: Send, reply: _Reply, request: dict[str, Any],
                      disconnected: asyncio.Event) -> bool:
        """Stream ``reply`` as SSE; False when the client went away first."""
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", f"req_{uuid.uuid4().hex}".encode())]})
        usage = bool((request.get("stream_options") or {}).get("include_usage"))
        base: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                                "object": "chat.completion.chunk", "created": int(time.time()),
                                "model": str(request["model"]),
                                "system_fingerprint": "fp_fake"}
        if usage:
            base["usage"] = None

        async def event(data: dict[str, Any]) -> bool:
            if disconnected.is_set():
                return False
            await send({"type": "http.response.body",
                        "body": b"data: " + json.dumps(data).encode() + b"\n\n",
                        "more_body": True})
            return True

        async def chunk(delta: dict[str, Any], finish: str | None = None) -> bool:
            data = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish}]}
            try:
                check_chunk(data)
            except InvalidMessage as exc:
                self.invalid_sent.append((data, str(exc)))
                return not disconnected.is_set()
            self.sent_chunks.append(data)
            return await event(data)

        async def pause(seconds: float, hold: asyncio.Event | None = None) -> bool:
            waiters = [asyncio.ensure_future(disconnected.wait())]
            if hold is not None:
                waiters.append(asyncio.ensure_future(hold.wait()))
            elif seconds <= 0:
                waiters[0].cancel()
                return not disconnected.is_set()
            try:
                await asyncio.wait(waiters, timeout=seconds if hold is None else None,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            return not disconnected.is_set()

        async def end() -> None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        if not await pause(reply.first_token_delay_s):
            return False
        first = {"role": "assistant", "content": "" if reply.text or not reply.tool_calls
                 else None, "refusal": None}
        if not await chunk(first):
            return False
        for k, piece in enumerate(split_words(reply.text, reply.chunk_words)):
            if k == reply.cut_after:
                await end()
                return True
            if k == reply.hold_after and not await pause(0, reply.hold):
                return False
            if k and not await pause(reply.chunk_delay_s):
                return False
            if not await chunk({"content": piece}):
                return False
        if reply.stream_error is not None:
            try:
                check_error(reply.stream_error)
            except InvalidMessage as exc:
                self.invalid_sent.append((reply.stream_error, str(exc)))
            await event(reply.stream_error)
            await end()
            return True
        for j, (call_id, name, arguments) in enumerate(reply.tool_calls):
            if not await chunk({"tool_calls": [{
                    "index": j, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]}):
                return False
            step = max(reply.chunk_chars, 1)
            for at in range(0, len(arguments), step):
                if not await chunk({"tool_calls": [{
                        "index": j, "function": {"arguments": arguments[at:at + step]}}]}):
                    return False
        if not await chunk({}, reply.finish_reason):
            return False
        if usage:
            prompt = sum(len(str(m.get("content") or "").split()) for m in request["messages"])
            done = len(reply.text.split()) + sum(len(a) // 4 for _, _, a in reply.tool_calls)
            data = {**base, "choices": [], "usage": {
                "prompt_tokens": prompt, "completion_tokens": done,
                "total_tokens": prompt + done}}
            try:
                check_chunk(data)
            except InvalidMessage as exc:
                self.invalid_sent.append((data, str(exc)))
            else:
                self.sent_chunks.append(data)
                if not await event(data):
                    return False
        if disconnected.is_set():
            return False
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n",
                    "more_body": True})
        await end()
        return True


def _echo(request: Mapping[str, Any]) -> str:
    """The default answer: ``"You said: <last user message>."``."""
    for msg in reversed(request["messages"]):
        if msg.get("role") == "user":
            content = msg.get("content")
            if not isinstance(content, str):
                content = " ".join(p.get("text", "") for p in content or []
                                   if isinstance(p, Mapping))
            return f"You said: {content.strip().rstrip('.')}."
    return "Hello."


__all__ = [
    "FakeChatCompletions",
    "InvalidMessage",
    "StrictCompletionCreateParamsStreaming",
    "check_chunk",
    "check_error",
    "check_request",
    "split_words",
]
