"""The LLM step of the cascade agent: any OpenAI-compatible Chat Completions endpoint.

The cascade (STT -> LLM -> TTS) asks an :class:`LLM` for the assistant's answer to a
conversation and speaks it sentence by sentence while it streams in. This module holds
that small interface (:class:`LLM`, :class:`LLMDelta`, :class:`ToolCallRequest`), the
tool-definition normaliser :func:`chat_tools`, and :class:`OpenAICompatibleLLM`, which
streams from ``POST {base_url}/chat/completions`` with the official ``openai`` SDK:
OpenAI itself, or a local llama.cpp (``llama-server``), Ollama, vLLM or LM Studio server.

Wire protocol followed: the OpenAI Chat Completions API with ``stream=True``
(https://platform.openai.com/docs/api-reference/chat/create and the streaming
``chat.completion.chunk`` object,
https://platform.openai.com/docs/api-reference/chat-streaming). The answer arrives as
Server-Sent Events, one ``chat.completion.chunk`` per event, ended by ``data: [DONE]``:

* text: ``choices[0].delta.content`` pieces, yielded at once as ``LLMDelta(text=...)``;
* tool calls: ``choices[0].delta.tool_calls[]`` pieces keyed by ``index``; the first
  piece of a call carries ``id``, ``type`` and ``function.name``, the following ones
  append to ``function.arguments`` (JSON text). They are accumulated and yielded once,
  complete, as ``LLMDelta(tool_calls=...)`` after the last chunk;
* ``choices[0].finish_reason`` (``"stop"``, ``"tool_calls"``, ``"length"``,
  ``"content_filter"``) ends the answer; a stream that ends without one was cut short
  and raises.

``messages`` use Chat Completions' shape::

    {"role": "system", "content": "Be brief."}
    {"role": "user", "content": "What's the weather in Paris?"}
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "call_abc", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\\"city\\":\\"Paris\\"}"}}]}
    {"role": "tool", "tool_call_id": "call_abc", "content": "{\\"temp_c\\": 21}"}
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import re
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import openai

from connectors.base import ConnectorError, shared_sdk_client

log = logging.getLogger(__name__)

#: ``ConnectorError.vendor`` of every error raised here.
VENDOR = "llm"
#: Where :class:`OpenAICompatibleLLM` goes when neither ``base_url`` nor
#: ``OPENAI_BASE_URL`` is given.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The model when neither ``model`` nor ``OPENAI_MODEL`` is given: fast, no reasoning
#: step (a voice turn waits for its first token), honours ``temperature`` and tools.
DEFAULT_MODEL = "gpt-4.1-mini"
#: API keys that mean "send no ``Authorization`` header" (local servers).
NO_API_KEY = frozenset({"", "none"})

# Chat Completions: "a-z, A-Z, 0-9, underscores and dashes, with a maximum length of 64".
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """One function call the model asks for (Chat Completions ``tool_calls[]`` entry).

    Attributes:
        id: the tool call id (``"call_abc"``); answer it with a
            ``{"role": "tool", "tool_call_id": id, "content": ...}`` message.
        name: the function name, as declared in the tools.
        arguments: the arguments as JSON text, exactly as the model produced it (it may
            be invalid JSON when the answer was cut at ``max_tokens``).
    """

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class LLMDelta:
    """One step of a streamed answer.

    Attributes:
        text: the next piece of assistant text (any length, often a word or less);
            empty on the final tool-call delta.
        tool_calls: only on the final delta of an answer that calls tools: every call,
            complete, in the order the model made them.
    """

    text: str = ""
    tool_calls: tuple[ToolCallRequest, ...] = ()


class LLM(Protocol):
    """What the cascade needs from a language model.

    Attributes:
        name: short name for logs (``"openai-compatible"``, ``"responder"``).
    """

    name: str

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
               ) -> AsyncIterator[LLMDelta]:
        """Stream the assistant's answer to ``messages``.

        Args:
            messages: the conversation in Chat Completions' shape (module docstring).
            tools: function tools the model may call (any shape :func:`chat_tools`
                accepts); empty for none.

        Yields:
            text deltas as they arrive, then, when the model calls tools, one final
            delta carrying them all.

        Raises:
            ConnectorError: the model could not be asked or its answer broke off.
        """
        ...


def chat_tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalise tool definitions to Chat Completions' function-tool shape.

    Accepted, per entry (``description``, ``parameters`` and ``strict`` optional):

    * Chat Completions: ``{"type": "function", "function": {"name", "description",
      "parameters", "strict"}}``;
    * Realtime / Responses (flat): ``{"type": "function", "name", "description",
      "parameters"}``;
    * bare: ``{"name", "description", "parameters"}``.

    Returns:
        New dicts ``{"type": "function", "function": {"name": ..., ...}}`` (parameters
        deep-copied; a JSON Schema object), in the input order.

    Raises:
        ValueError: an entry is not a dict, is not a function tool, has no name, a name
            outside ``[A-Za-z0-9_-]{1,64}``, a duplicate name, an unknown key, or a
            ``description`` / ``parameters`` / ``strict`` of the wrong type; the message
            names the entry (``tool 2 ('get_weather'): ...``).
    """
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, tool in enumerate(tools):
        where = f"tool {i}"
        if not isinstance(tool, Mapping):
            raise ValueError(f"{where}: expected a dict, got {type(tool).__name__}")
        kind = tool.get("type", "function")
        if kind != "function":
            raise ValueError(f"{where}: type {kind!r} is not supported (only function tools)")
        if "function" in tool:
            fn = tool["function"]
            if not isinstance(fn, Mapping):
                raise ValueError(f"{where}: 'function' must be a dict, got {type(fn).__name__}")
            beside = sorted(set(tool) - {"type", "function"})
            if beside:
                raise ValueError(f"{where}: unexpected key(s) {beside} beside 'function'")
        else:
            fn = {k: v for k, v in tool.items() if k != "type"}
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: missing function name")
        where = f"tool {i} ({name!r})"
        unknown = sorted(set(fn) - _FUNCTION_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}")
        if not _TOOL_NAME.fullmatch(name):
            raise ValueError(f"{where}: the name must be 1-64 letters, digits, '_' or '-'")
        if name in seen:
            raise ValueError(f"{where}: duplicate name (also tool {seen[name]})")
        seen[name] = i
        function: dict[str, Any] = {"name": name}
        description = fn.get("description")
        if description is not None:
            if not isinstance(description, str):
                raise ValueError(f"{where}: 'description' must be a string")
            function["description"] = description
        parameters = fn.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, Mapping):
                raise ValueError(f"{where}: 'parameters' must be a JSON Schema object (dict)")
            function["parameters"] = copy.deepcopy(dict(parameters))
        strict = fn.get("strict")
        if strict is not None:
            if not isinstance(strict, bool):
                raise ValueError(f"{where}: 'strict' must be true or false")
            function["strict"] = strict
        out.append({"type": "function", "function": function})
    return out


@dataclass
class _PartialCall:
    """A tool call being assembled from ``delta.tool_calls[]`` pieces."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAICompatibleLLM:
    """Streams chat completions from an OpenAI-compatible ``/chat/completions`` endpoint.

    One instance may serve many concurrent :meth:`stream` calls; the SDK client is
    shared per event loop (:func:`connectors.base.shared_sdk_client`, built off the loop).

    Args:
        model: the model id, e.g. ``"gpt-4.1-mini"``, ``"llama3.2"`` (Ollama) or the
            alias a llama.cpp server was started with; default ``OPENAI_MODEL`` or
            :data:`DEFAULT_MODEL`.
        base_url: API root ending in ``/v1``, e.g. ``"http://127.0.0.1:11434/v1"``;
            default ``OPENAI_BASE_URL`` or ``https://api.openai.com/v1``.
        api_key: bearer token, never logged; default ``OPENAI_API_KEY``. ``""`` or
            ``"none"`` (or none set) sends no ``Authorization`` header, for local
            servers; OpenAI's own host then refuses to start a request.
        temperature: sampling temperature (0-2); None leaves the server's default.
        max_tokens: cap on generated tokens; sent as ``max_completion_tokens`` to
            api.openai.com (its reasoning models refuse ``max_tokens``) and as
            ``max_tokens`` elsewhere (what llama.cpp, Ollama and vLLM read). None: no cap.
        timeout_s: seconds allowed for each wait on the server: connecting (capped at
            5 s), the response headers, and every gap between streamed chunks, the wait
            for the first token included. Not a bound on the whole answer.
        extra_body: further JSON body fields, merged in as they are
            (``{"top_k": 40}``, ``{"stream_options": {"include_usage": True}}``).
        max_retries: SDK retries of a failed request (connection errors, 408/409/429,
            5xx) before the stream starts. Default 0: in a live call the cascade
            decides, and :attr:`ConnectorError.retryable` tells it whether to.
        name: short name for logs.

    Raises:
        ValueError: ``base_url`` is not an http(s) URL.
    """

    name: str = "openai-compatible"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout_s: float = 30.0,
        extra_body: Mapping[str, Any] | None = None,
        max_retries: int = 0,
        name: str | None = None,
    ) -> None:
        model = model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
        url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {url!r}")
        if api_key is None:
            api_key = os.environ.get("OPENAI_API_KEY")
        self.model = model
        self.base_url = url
        self.host = parts.netloc.rpartition("@")[2]  # never user:password
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = float(timeout_s)
        self.extra_body = dict(extra_body) if extra_body else None
        self.max_retries = max(int(max_retries), 0)
        if name is not None:
            self.name = name
        self._api_key = None if api_key is None or api_key.strip().lower() in NO_API_KEY \
            else api_key

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model!r}, base_url={self.base_url!r})"

    # -- the request ----------------------------------------------------------------
    async def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                     ) -> AsyncIterator[LLMDelta]:
        """Stream the assistant's answer to ``messages`` (``chat.completion.chunk`` events).

        Args:
            messages: the conversation in Chat Completions' shape (module docstring).
            tools: function tools in any shape :func:`chat_tools` accepts; empty for
                none (then no ``tools`` field is sent).

        Yields:
            ``LLMDelta(text=...)`` for every non-empty ``delta.content`` (and
            ``delta.refusal``) piece as soon as its chunk arrives; then, when the model
            called tools, one ``LLMDelta(tool_calls=...)`` with every call complete.
            Closing the iterator early (``aclose()``, barge-in) closes the HTTP response.

        Raises:
            ConnectorError: ``vendor="llm"``; a bad tool definition, no API key for
                OpenAI, ``HTTP <status> from <host>: <server message>``, ``timed out``,
                ``connection refused to <host>``, an error event mid-stream, or a
                stream that ended before its ``finish_reason``. ``retryable`` is True
                for network trouble, timeouts, 408/409/429 and 5xx.
        """
        try:
            chat = chat_tools(tools or [])
        except ValueError as exc:
            raise ConnectorError(f"llm: bad tool definition: {exc}", vendor=VENDOR) from exc
        if self._api_key is None and self._is_openai():
            raise ConnectorError(
                f"llm: no API key for {self.base_url}: pass api_key or set OPENAI_API_KEY",
                vendor=VENDOR)
        client = await self._client()
        kwargs: dict[str, Any] = {}
        if chat:
            kwargs["tools"] = chat
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_tokens is not None:
            key = "max_completion_tokens" if self._is_openai() else "max_tokens"
            kwargs[key] = self.max_tokens
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        if self._api_key is None:  # local server: no Authorization header at all
            kwargs["extra_headers"] = {"Authorization": openai.omit}
        log.debug("llm: %s at %s: %d message(s), %d tool(s)", self.model, self.host,
                  len(messages), len(chat))
        try:
            response = await client.chat.completions.create(
                model=self.model, messages=messages, stream=True,
                timeout=openai.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0)),
                **kwargs)
        except openai.OpenAIError as exc:
            raise self._error(exc) from _safe_cause(exc)

        calls: dict[int, _PartialCall] = {}
        finish: str | None = None
        try:
            async with response:
                async for chunk in response:
                    for choice in getattr(chunk, "choices", None) or ():
                        if getattr(choice, "index", 0) not in (0, None):
                            continue  # n > 1 was asked for in extra_body: first choice only
                        delta = getattr(choice, "delta", None)
                        if delta is not None:
                            text = (getattr(delta, "content", None) or "") + \
                                (getattr(delta, "refusal", None) or "")
                            if text:
                                yield LLMDelta(text=text)
                            for piece in getattr(delta, "tool_calls", None) or ():
                                _accumulate(calls, piece)
                        if getattr(choice, "finish_reason", None):
                            finish = choice.finish_reason
        except openai.OpenAIError as exc:
            raise self._error(exc) from _safe_cause(exc)
        if finish is None:
            raise ConnectorError(
                f"llm: the stream from {self.host} ended before a finish_reason "
                "(answer cut short)", vendor=VENDOR, retryable=True)
        if finish == "length":
            log.info("llm: %s: answer cut at max_tokens=%s", self.model, self.max_tokens)
        elif finish == "content_filter":
            log.warning("llm: %s: answer stopped by the content filter", self.model)
        if calls:
            yield LLMDelta(tool_calls=tuple(self._finish_call(calls[i]) for i in sorted(calls)))

    def _finish_call(self, part: _PartialCall) -> ToolCallRequest:
        if not part.name:
            raise ConnectorError(f"llm: {self.host} streamed a tool call without a name",
                                 vendor=VENDOR)
        return ToolCallRequest(id=part.id or f"call_{uuid.uuid4().hex[:24]}", name=part.name,
                               arguments="".join(part.arguments))

    # -- the SDK client ----------------------------------------------------------------
    def _is_openai(self) -> bool:
        host = urlsplit(self.base_url).hostname or ""
        return host == "api.openai.com"

    async def _client(self) -> openai.AsyncOpenAI:
        key = ("openai-chat", self.base_url, self._api_key, self.max_retries)
        api_key, base_url, retries = self._api_key, self.base_url, self.max_retries

        def build() -> openai.AsyncOpenAI:
            # The SDK insists on a credential: with none, a placeholder whose header
            # each request omits (stream(): extra_headers).
            return openai.AsyncOpenAI(api_key=api_key or "none", base_url=base_url,
                                      max_retries=retries)

        try:
            return await shared_sdk_client(key, build)
        except openai.OpenAIError as exc:
            raise ConnectorError(self._scrub(f"llm: cannot set up the client: {exc}"),
                                 vendor=VENDOR) from None

    # -- errors ---------------------------------------------------------------------
    def _error(self, exc: openai.OpenAIError) -> ConnectorError:
        """A precise, key-free :class:`ConnectorError` for an SDK failure."""
        retryable = False
        if isinstance(exc, openai.APITimeoutError):
            what = f"request to {self.host} timed out (timeout_s={self.timeout_s:g})"
            retryable = True
        elif isinstance(exc, openai.APIConnectionError):
            what = _connection_failure(exc, self.host)
            retryable = True
        elif isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            what = f"HTTP {status} from {self.host}: {_server_message(exc)}"
            retryable = status in (408, 409, 429) or status >= 500
        elif isinstance(exc, openai.APIError):  # an error event inside the stream
            what = f"{self.host} reported an error mid-stream: {_server_message(exc)}"
            retryable = True
        else:
            what = f"{type(exc).__name__}: {exc}"
        return ConnectorError(self._scrub(f"llm: {what}"), vendor=VENDOR, retryable=retryable)

    def _scrub(self, text: str) -> str:
        key = self._api_key
        return text.replace(key, "***") if key and len(key) >= 6 else text


def _accumulate(calls: dict[int, _PartialCall], piece: Any) -> None:
    """Add one ``delta.tool_calls[]`` entry to the call it continues (by ``index``)."""
    call_id = getattr(piece, "id", None) or ""
    index = getattr(piece, "index", None)
    if not isinstance(index, int):  # some servers omit it: a new id starts a new call
        known = any(c.id == call_id for c in calls.values())
        index = max(calls, default=-1) + (1 if call_id and not known else 0)
        index = max(index, 0)
    part = calls.setdefault(index, _PartialCall())
    if call_id and not part.id:
        part.id = call_id
    fn = getattr(piece, "function", None)
    if fn is None:
        return
    name = getattr(fn, "name", None) or ""
    if name and name != part.name:
        part.name = name if not part.name else part.name + name
    arguments = getattr(fn, "arguments", None)
    if arguments:
        part.arguments.append(arguments)


def _server_message(exc: openai.APIError) -> str:
    """The server's own error text: ``error.message`` (+ ``code``), else the raw body."""
    body = exc.body
    message: str | None = None
    code: Any = None
    if isinstance(body, Mapping):
        message = body.get("message") if isinstance(body.get("message"), str) else None
        code = body.get("code")
        if message is None and isinstance(body.get("detail"), str):  # FastAPI-style servers
            message = body["detail"]
    elif isinstance(body, str) and body.strip():
        message = body.strip()
    if message is None:
        message = exc.message
    if len(message) > 400:
        message = message[:400] + "..."
    return f"{message} ({code})" if code and str(code) not in message else message


def _connection_failure(exc: BaseException, host: str) -> str:
    """Name why a connection failed from the exception chain (refused, DNS, TLS ...)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for err in chain:
        if isinstance(err, ConnectionRefusedError) or (
                isinstance(err, OSError) and err.errno == errno.ECONNREFUSED):
            return f"connection refused to {host}"
        if isinstance(err, socket.gaierror):
            return f"cannot resolve {host.rsplit(':', 1)[0]}: {err.strerror or err}"
        if isinstance(err, ssl.SSLError):
            return f"TLS with {host} failed: {err}"
    text = " ".join(str(e) for e in chain).lower()
    if "connection refused" in text or "connect call failed" in text:
        return f"connection refused to {host}"
    root = chain[-1]
    if root is exc:
        return f"connection to {host} failed"
    return f"connection to {host} failed: {type(root).__name__}: {root}"


def _safe_cause(exc: openai.OpenAIError) -> BaseException | None:
    """Chain network failures (no secrets in them), not server errors: their text holds
    the server's body, which could echo the key."""
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError):
        return None
    return exc


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "LLM",
    "LLMDelta",
    "OpenAICompatibleLLM",
    "ToolCallRequest",
    "chat_tools",
]
