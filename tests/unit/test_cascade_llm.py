"""The cascade's OpenAI-compatible LLM client against a local Chat Completions server.

:class:`OpenAICompatibleLLM` (real ``openai`` SDK, real HTTP over loopback) talks to
:class:`tests.fakes.fake_chat_completions.FakeChatCompletions`, which validates every
request against the SDK's own request types and every chunk it sends against
``ChatCompletionChunk``. Also: :func:`chat_tools`, and the fake's own checks.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.base import ConnectorError
from connectors.cascade.llm import (
    DEFAULT_MODEL,
    LLM,
    LLMDelta,
    OpenAICompatibleLLM,
    ToolCallRequest,
    chat_tools,
)
from tests.fakes.fake_chat_completions import (
    FakeChatCompletions,
    InvalidMessage,
    check_chunk,
    check_request,
    split_words,
)

KEY = "sk-test-cascade-0123456789"
USER = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What's the weather in Paris?"}]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeChatCompletions]:
    async with FakeChatCompletions(api_key=KEY) as server:
        yield server
        assert server.invalid_sent == []
        assert server.invalid_received == []


def make_llm(fake: FakeChatCompletions, **kw: Any) -> OpenAICompatibleLLM:
    kw.setdefault("api_key", KEY)
    return OpenAICompatibleLLM("gpt-test", base_url=fake.base_url, **kw)


async def collect(llm: LLM, messages: list[dict[str, Any]],
                  tools: list[dict[str, Any]] | None = None) -> list[LLMDelta]:
    async with asyncio.timeout(10):
        return [d async for d in llm.stream(messages, tools or [])]


async def failure(llm: LLM, messages: list[dict[str, Any]] = USER,
                  tools: list[dict[str, Any]] | None = None) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        await collect(llm, messages, tools)
    return info.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- text ------------------------------------------------------------------------------
async def test_text_is_yielded_piece_by_piece_as_it_arrives(fake: FakeChatCompletions) -> None:
    text = "It is sunny in Paris today. Enjoy your walk!"
    fake.reply_text(text, chunk_words=2, hold_after=1)
    gen = make_llm(fake).stream(USER, [])
    async with asyncio.timeout(5):
        first = await anext(gen)  # the server holds the rest until release()
    assert first == LLMDelta(text="It is")
    fake.release()
    rest = [d async for d in gen]
    assert len(rest) >= 2
    assert first.text + "".join(d.text for d in rest) == text
    assert all(d.tool_calls == () for d in [first, *rest])

    body = fake.requests[0]
    assert body["model"] == "gpt-test"
    assert body["stream"] is True
    assert body["messages"] == USER
    assert "tools" not in body  # omitted when there are none
    assert fake.authorizations == [f"Bearer {KEY}"]


async def test_echo_when_nothing_is_scripted(fake: FakeChatCompletions) -> None:
    deltas = await collect(make_llm(fake), [{"role": "user", "content": "hello there"}])
    assert "".join(d.text for d in deltas) == "You said: hello there."


async def test_options_and_extra_body_are_sent(fake: FakeChatCompletions) -> None:
    llm = make_llm(fake, temperature=0.3, max_tokens=50,
                   extra_body={"stream_options": {"include_usage": True}})
    fake.reply_text("Fine.")
    deltas = await collect(llm, USER)
    assert "".join(d.text for d in deltas) == "Fine."
    body = fake.requests[0]
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 50  # not api.openai.com: the widely read name
    assert body["stream_options"] == {"include_usage": True}
    assert fake.sent_chunks[-1]["choices"] == []  # the usage chunk did not break the client
    assert fake.sent_chunks[-1]["usage"]["total_tokens"] > 0


async def test_local_server_without_key_gets_no_authorization() -> None:
    async with FakeChatCompletions(api_key=None) as server:
        for key in ("none", ""):
            llm = OpenAICompatibleLLM("llama3.2", base_url=server.base_url, api_key=key)
            deltas = await collect(llm, USER)
            assert deltas
        assert server.authorizations == [None, None]
        assert server.invalid_received == []


# -- tool calls ----------------------------------------------------------------------------
async def test_tool_call_arguments_accumulate_into_one_request(
        fake: FakeChatCompletions) -> None:
    args = {"city": "Paris", "unit": "celsius", "days": 3}
    call_id = fake.reply_tool_call("get_weather", args, chunk_chars=5)
    deltas = await collect(make_llm(fake), USER, [WEATHER])

    pieces = [c for c in fake.sent_chunks
              if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert len(pieces) > 3  # the arguments really came in several chunks
    assert [d.text for d in deltas if d.text] == []
    assert deltas[-1] == LLMDelta(tool_calls=(
        ToolCallRequest(id=call_id, name="get_weather", arguments=json.dumps(args)),))
    assert all(not d.tool_calls for d in deltas[:-1])
    assert json.loads(deltas[-1].tool_calls[0].arguments) == args
    # the Realtime-shaped tool went out in Chat Completions' shape
    assert fake.requests[0]["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"],
        "parameters": WEATHER["parameters"]}}]


async def test_parallel_tool_calls_after_text_keep_their_order(
        fake: FakeChatCompletions) -> None:
    ids = fake.reply_tool_calls([("get_weather", {"city": "Paris"}),
                                 ("get_time", {"zone": "Europe/Paris"})],
                                text="Let me check.", chunk_chars=4)
    tools = [WEATHER, {"name": "get_time", "parameters": {"type": "object"}}]
    deltas = await collect(make_llm(fake), USER, tools)
    assert "".join(d.text for d in deltas) == "Let me check."
    calls = deltas[-1].tool_calls
    assert [(c.id, c.name) for c in calls] == [(ids[0], "get_weather"), (ids[1], "get_time")]
    assert [json.loads(c.arguments) for c in calls] == [{"city": "Paris"},
                                                        {"zone": "Europe/Paris"}]


async def test_follow_up_with_tool_result_validates(fake: FakeChatCompletions) -> None:
    llm = make_llm(fake)
    fake.reply_tool_call("get_weather", {"city": "Paris"})
    call = (await collect(llm, USER, [WEATHER]))[-1].tool_calls[0]
    follow_up = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})},
    ]
    fake.reply_text("It is 21 degrees in Paris.")
    deltas = await collect(llm, follow_up, [WEATHER])
    assert "".join(d.text for d in deltas) == "It is 21 degrees in Paris."
    await fake.wait_requests(2)
    assert fake.requests[1]["messages"] == follow_up


async def test_a_tool_message_with_an_unknown_id_is_refused(
        fake: FakeChatCompletions) -> None:
    bad = [*USER, {"role": "tool", "tool_call_id": "call_nope", "content": "21"}]
    err = await failure(make_llm(fake), bad)
    assert "HTTP 400" in str(err)
    assert "role 'tool'" in str(err)
    assert not err.retryable
    assert len(fake.invalid_received) == 1
    fake.invalid_received.clear()


async def test_a_tool_message_without_tool_call_id_is_refused(
        fake: FakeChatCompletions) -> None:
    bad = [*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
           {"role": "tool", "content": "21"}]
    err = await failure(make_llm(fake), bad)
    assert "HTTP 400" in str(err) and "tool_call_id" in str(err)
    assert len(fake.invalid_received) == 1
    fake.invalid_received.clear()


# -- errors ---------------------------------------------------------------------------------
async def test_wrong_key_gives_401_without_the_key(fake: FakeChatCompletions) -> None:
    wrong = "sk-wrong-secret-key-98765"
    err = await failure(make_llm(fake, api_key=wrong))
    text = str(err)
    assert "HTTP 401" in text and fake.base_url.split("//")[1].split("/")[0] in text
    assert "Incorrect API key" in text
    assert wrong not in text and KEY not in text
    assert err.vendor == "llm"
    assert not err.retryable
    assert err.__cause__ is None  # the SDK error (with the server's body) is not chained
    assert fake.requests == [] and fake.unauthorized == 1


async def test_a_server_that_echoes_the_key_does_not_leak_it(
        fake: FakeChatCompletions) -> None:
    fake.reply_error(400, f"bad request from {KEY}")
    err = await failure(make_llm(fake))
    assert KEY not in str(err) and "***" in str(err)


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (503, True),
                                                   (404, False), (400, False)])
async def test_http_errors_name_status_and_server_message(
        fake: FakeChatCompletions, status: int, retryable: bool) -> None:
    fake.reply_error(status, "Something specific went wrong", code="some_code")
    err = await failure(make_llm(fake))
    assert f"HTTP {status}" in str(err)
    assert "Something specific went wrong (some_code)" in str(err)
    assert err.retryable is retryable


async def test_connection_refused() -> None:
    port = free_port()
    llm = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    err = await failure(llm)
    assert str(err) == f"llm: connection refused to 127.0.0.1:{port}"
    assert err.retryable and err.vendor == "llm"


async def test_first_token_timeout(fake: FakeChatCompletions) -> None:
    fake.reply_text("Too late.", first_token_delay_s=30)
    err = await failure(make_llm(fake, timeout_s=0.2))
    assert "timed out" in str(err) and err.retryable
    await fake.wait_until(lambda: fake.disconnects == 1)


async def test_error_event_mid_stream(fake: FakeChatCompletions) -> None:
    fake.reply_stream_error("The server had an error while processing your request.",
                            text="Let me see")
    got: list[LLMDelta] = []
    with pytest.raises(ConnectorError) as info:
        async for d in make_llm(fake).stream(USER, []):
            got.append(d)
    assert "".join(d.text for d in got) == "Let me see"
    assert "mid-stream" in str(info.value)
    assert "The server had an error" in str(info.value)
    assert info.value.retryable


async def test_stream_cut_before_finish_reason_raises(fake: FakeChatCompletions) -> None:
    fake.reply_text("One two three four five six.", chunk_words=1, cut_after=2)
    got: list[LLMDelta] = []
    with pytest.raises(ConnectorError, match="ended before a finish_reason") as info:
        async for d in make_llm(fake).stream(USER, []):
            got.append(d)
    assert [d.text for d in got] == ["One", " two"]
    assert info.value.retryable


async def test_closing_the_stream_early_closes_the_response(
        fake: FakeChatCompletions) -> None:
    fake.reply_text("A long answer that the caller interrupts half way.", hold_after=1)
    gen = make_llm(fake).stream(USER, [])
    async with asyncio.timeout(5):
        assert (await anext(gen)).text
    await gen.aclose()  # barge-in
    await fake.wait_until(lambda: fake.disconnects == 1)


async def test_no_key_for_openai_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    llm = OpenAICompatibleLLM("gpt-test", api_key="none")
    assert llm.base_url == "https://api.openai.com/v1"
    err = await failure(llm)
    assert "no API key" in str(err) and not err.retryable


async def test_environment_defaults_and_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1/")
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    assert OpenAICompatibleLLM().model == DEFAULT_MODEL
    monkeypatch.setenv("OPENAI_MODEL", "llama3.2")
    llm = OpenAICompatibleLLM()
    assert llm.model == "llama3.2"
    assert llm.base_url == "http://127.0.0.1:1234/v1"
    assert llm.name == "openai-compatible"
    assert KEY not in repr(llm)
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleLLM("m", base_url="ftp://example.com/v1")


async def test_a_bad_tool_definition_is_a_connector_error(fake: FakeChatCompletions) -> None:
    err = await failure(make_llm(fake), USER, [{"type": "function"}])
    assert "bad tool definition" in str(err) and "tool 0" in str(err)
    assert fake.requests == []


# -- chat_tools -------------------------------------------------------------------------------
def test_chat_tools_accepts_the_three_shapes() -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}}
    expected = {"type": "function", "function": {
        "name": "get_weather", "description": "Weather", "parameters": params}}
    chat = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                             "parameters": params}}
    flat = {"type": "function", "name": "get_weather", "description": "Weather",
            "parameters": params}
    bare = {"name": "get_weather", "description": "Weather", "parameters": params}
    for shape in (chat, flat, bare):
        out = chat_tools([shape])
        assert out == [expected]
        out[0]["function"]["parameters"]["type"] = "changed"
        assert params["type"] == "object"  # a copy, not the caller's dict
    assert chat_tools([{"name": "ping"}]) == [{"type": "function", "function": {"name": "ping"}}]
    assert chat_tools([{"type": "function", "function": {"name": "x", "strict": True}}]) == [
        {"type": "function", "function": {"name": "x", "strict": True}}]
    assert chat_tools([]) == []


@pytest.mark.parametrize(("tools", "message"), [
    (["get_weather"], "tool 0: expected a dict"),
    ([{"type": "mcp", "server_label": "x"}], "tool 0: type 'mcp' is not supported"),
    ([{"description": "no name"}], "tool 0: missing function name"),
    ([{"name": "ok"}, {"name": "has space"}], "tool 1 ('has space'): the name must be"),
    ([{"name": "f", "parameters": "[]"}], "tool 0 ('f'): 'parameters' must be"),
    ([{"name": "f", "description": 3}], "tool 0 ('f'): 'description' must be"),
    ([{"name": "f"}, {"type": "function", "function": {"name": "f"}}],
     "tool 1 ('f'): duplicate name (also tool 0)"),
    ([{"name": "f", "required": ["city"]}], "tool 0 ('f'): unknown key(s) ['required']"),
    ([{"type": "function", "function": {"name": "f"}, "name": "f"}],
     "tool 0: unexpected key(s) ['name'] beside 'function'"),
    ([{"type": "function", "function": "f"}], "tool 0: 'function' must be a dict"),
])
def test_chat_tools_names_the_bad_entry(tools: list[Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        chat_tools(tools)
    assert str(info.value).startswith(message)


# -- the fake's own checks -------------------------------------------------------------------------
def test_fake_request_check_is_strict() -> None:
    good = {"model": "m", "stream": True, "messages": USER}
    assert check_request(json.dumps(good)) == good
    with pytest.raises(InvalidMessage, match="bogus"):
        check_request({**good, "bogus": 1})
    assert check_request({**good, "top_k": 40}, allow_extra={"top_k"})["top_k"] == 40
    with pytest.raises(InvalidMessage, match="stream"):
        check_request({"model": "m", "messages": USER})  # only streaming is served
    with pytest.raises(InvalidMessage, match="temperature"):
        check_request({**good, "temperature": "0.5"})
    with pytest.raises(InvalidMessage, match=r"^messages\[0\]\.x: Extra inputs"):
        check_request({**good, "messages": [{"role": "user", "content": "hi", "x": 1}]})
    with pytest.raises(InvalidMessage, match="too short"):
        check_request({**good, "messages": []})
    with pytest.raises(InvalidMessage, match="unanswered"):
        check_request({**good, "messages": [*USER, {
            "role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}]})


def test_fake_chunk_check_is_strict() -> None:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
             "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"},
                                        "finish_reason": None}]}
    assert check_chunk(chunk).choices[0].delta.content == "hi"
    with pytest.raises(InvalidMessage, match="unknown key"):
        check_chunk({**chunk, "choices": [{"index": 0, "delta": {"text": "hi"},
                                           "finish_reason": None}]})
    with pytest.raises(InvalidMessage):
        check_chunk({**chunk, "object": "chat.completion"})
    with pytest.raises(InvalidMessage):
        check_chunk({**chunk, "choices": [{"index": 0, "delta": {},
                                           "finish_reason": "done"}]})


def test_split_words_keeps_the_text() -> None:
    text = "  Hello there,  how are you?\n"
    assert "".join(split_words(text, 2)) == text
    assert len(split_words(text, 1)) == 5
    assert split_words("", 2) == []


async def test_fake_refuses_bad_bodies_and_paths(fake: FakeChatCompletions) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as http:
        r = await http.post("/chat/completions", json={"model": "m", "stream": True,
                                                       "messages": USER, "bogus": True})
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "bogus" in r.json()["error"]["message"]
        r = await http.post("/chat/completions", content=b"{not json")
        assert r.status_code == 400
        r = await http.get("/models")
        assert r.status_code == 404 and "Invalid URL" in r.json()["error"]["message"]
    assert len(fake.invalid_received) == 2
    fake.invalid_received.clear()
