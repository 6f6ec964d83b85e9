"""The real ``openai`` SDK client against the local OpenAI Realtime GA fake.

Every event the fake sends is validated against the SDK's GA server-event types
(strict mode), and every event the connector sends against the client-event
types (``fake.invalid_received`` must stay empty).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ConnectOptions, ConnectorError, VoiceAIEvents
from connectors.openai import OpenAI, RealtimeAPIClient
from gateway.media.format import PCM16_24K, PCMU_8K
from gateway.runtime.events import Event
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_openai_realtime import (
    FakeRealtimeServer,
    InvalidEvent,
    validate_server_event,
)
from tests.fakes.fake_session import FakeSession

E = OpenAI.RealtimeAPIEvents
KEY = "sk-test-secret-0123456789"
FAST = ConnectOptions(retries=0, backoff=0.01, timeout=5.0)


# -- media doubles -------------------------------------------------------------------
CallLike = FakeCall


def tone_pcm24k(ms: int, hz: float = 440.0) -> bytes:
    n = 24000 * ms // 1000
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * hz * i / 24000))
                                   for i in range(n)))


def ulaw_pattern(ms: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(8 * ms))


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(cond: Any, timeout: float = 5.0) -> None:
    """Wait for a client-side condition (the fake only wakes on what it receives)."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(api_key=KEY) as server:
        yield server
        assert server.invalid_received == []
        assert server.invalid_sent == []


@pytest.fixture
async def echo_fake() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(mode="echo", api_key=KEY, echo_turn_ms=200) as server:
        yield server
        assert server.invalid_received == []
        assert server.invalid_sent == []


async def connect(fake: FakeRealtimeServer, **kw: Any) -> RealtimeAPIClient:
    kw.setdefault("connect_options", FAST)
    return await OpenAI.create_realtime_api_client(
        api_key=KEY, websocket_base_url=fake.ws_url, **kw)


# -- connecting ----------------------------------------------------------------------
async def test_connects_with_sdk_and_configures_session(fake: FakeRealtimeServer) -> None:
    ai = await connect(fake, model="gpt-realtime", instructions="Be brief.", voice="cedar",
                       tools=[{"type": "function", "name": "weather",
                               "parameters": {"type": "object", "properties": {}}}])
    created: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    ai.add_event_listener(E.SessionCreated, created.set_result)
    updated = await fake.wait_for("session.update")
    ev = await asyncio.wait_for(created, 5)
    assert ev.data["type"] == "session.created" and ev.client is ai
    [hs] = fake.handshakes
    assert hs["path"] == "/v1/realtime" and hs["query"]["model"] == "gpt-realtime"
    assert hs["authorization"] == f"Bearer {KEY}"
    session = updated["session"]
    assert session["type"] == "realtime"
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["tools"][0]["name"] == "weather"
    await ai.close()


async def test_openai_base_url_and_api_key_from_env(
    fake: FakeRealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    ai = await OpenAI.create_realtime_api_client(connect_options=FAST)
    assert fake.handshakes[0]["path"] == "/v1/realtime"
    assert fake.handshakes[0]["authorization"] == f"Bearer {KEY}"
    await ai.close()


async def test_missing_api_key_is_a_connector_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConnectorError):
        await OpenAI.create_realtime_api_client(websocket_base_url="ws://127.0.0.1:9/v1")


async def test_connection_refused_raises_connector_error_after_retries() -> None:
    port = free_tcp_port()
    with pytest.raises(ConnectorError, match="2 attempt") as info:
        await OpenAI.create_realtime_api_client(
            api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1",
            connect_options=ConnectOptions(retries=1, backoff=0.01, timeout=5.0))
    assert info.value.retryable
    assert KEY not in str(info.value)


async def test_wrong_api_key_is_not_retried(fake: FakeRealtimeServer) -> None:
    with pytest.raises(ConnectorError, match="401") as info:
        await OpenAI.create_realtime_api_client(
            api_key="sk-wrong", websocket_base_url=fake.ws_url,
            connect_options=ConnectOptions(retries=3, backoff=0.01))
    assert [h["status"] for h in fake.handshakes] == [401]
    # the refusal is named, with what the server said, and the key is not in it
    assert "authentication refused" in str(info.value)
    assert "invalid api key" in str(info.value)
    assert "sk-wrong" not in str(info.value)


async def test_server_unavailable_then_retry_succeeds() -> None:
    async with FakeRealtimeServer(api_key=KEY, reject_handshakes=1, reject_status=503) as fake:
        ai = await OpenAI.create_realtime_api_client(
            api_key=KEY, websocket_base_url=fake.ws_url,
            connect_options=ConnectOptions(retries=1, backoff=0.01))
        assert [h["status"] for h in fake.handshakes] == [503, 101]
        await ai.close()


async def test_silent_server_times_out_as_connector_error() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hold the connection open, say nothing
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectorError, match="timed out"):
            await OpenAI.create_realtime_api_client(
                api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1",
                connect_options=ConnectOptions(retries=0, timeout=0.2))
    finally:
        server.close()
        await server.wait_closed()


async def test_api_key_never_logged(
    fake: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ai = await connect(fake)
    await fake.wait_for("session.update")
    await ai.close()
    assert "Authorization" in caplog.text or "authorization" in caplog.text.lower()
    assert KEY not in caplog.text
    assert KEY not in repr(ai)


# -- media ---------------------------------------------------------------------------
async def test_echo_round_trip_pcmu_passthrough(echo_fake: FakeRealtimeServer) -> None:
    ai = await connect(echo_fake)
    call = CallLike(PCMU_8K)
    updated: list[Event] = []
    ai.add_event_listener(E.SessionUpdated, updated.append)
    call.send_media_to(ai)
    ai.send_media_to(call)
    assert ai.input_format == PCMU_8K and ai.output_format == PCMU_8K
    await echo_fake.wait_until(lambda: echo_fake.input_format == {"type": "audio/pcmu"})
    sent = ulaw_pattern(1000)
    for i in range(0, len(sent), 160):  # 50 frames of 20 ms
        call.push(sent[i:i + 160])
    await echo_fake.wait_audio(len(sent))
    await call.wait_received(len(sent))
    assert bytes(echo_fake.received_audio) == sent  # no transcoding on the way in
    assert bytes(call.received) == sent  # nor on the way out
    assert echo_fake.output_format == {"type": "audio/pcmu"}
    assert all(fmt == {"type": "audio/pcmu"} for _, fmt in echo_fake.audio_chunks)
    assert updated and updated[-1].data["session"]["audio"]["output"]["format"] == {
        "type": "audio/pcmu"}
    types = [e["type"] for e in echo_fake.sent_events]
    assert types.count("response.created") == types.count("response.done") == 5
    await ai.close()


async def test_echo_round_trip_pcm24k(echo_fake: FakeRealtimeServer) -> None:
    ai = await connect(echo_fake)
    src = CallLike(PCM16_24K)
    src.send_media_to(ai)
    ai.send_media_to(src)
    audio = tone_pcm24k(400)
    for i in range(0, len(audio), 960):
        src.push(audio[i:i + 960])
    await src.wait_received(len(audio))
    assert bytes(echo_fake.received_audio) == audio
    assert bytes(src.received) == audio
    assert echo_fake.input_format == {"type": "audio/pcm", "rate": 24000}
    await ai.close()


async def test_function_call_and_tool_result(fake: FakeRealtimeServer) -> None:
    ai = await connect(fake)
    calls: list[Event] = []

    def on_call(e: Event) -> None:
        calls.append(e)
        ai.send_tool_result(e.data["call_id"], {"temperature_c": 21})

    ai.add_event_listener(E.ResponseFunctionCallArgumentsDone, on_call)
    await fake.wait_for("session.update")
    call_id = await fake.function_call("weather", {"city": "Oslo"})
    create = await fake.wait_for("response.create")
    [ev] = calls
    assert ev.data["name"] == "weather" and ev.data["arguments"] == '{"city": "Oslo"}'
    items = [e for e in fake.received_events if e["type"] == "conversation.item.create"]
    assert items[-1]["item"] == {"type": "function_call_output", "call_id": call_id,
                                 "output": '{"temperature_c": 21}'}
    assert fake.received_events.index(items[-1]) < fake.received_events.index(create)
    await ai.close()


async def test_barge_in_truncates_at_played_position(fake: FakeRealtimeServer) -> None:
    ai = await connect(fake)
    call = CallLike(PCM16_24K)
    call.send_media_to(ai)
    ai.send_media_to(call)
    await fake.wait_for("session.update")
    speech: list[Event] = []
    ai.add_event_listener(E.InputAudioBufferSpeechStarted,
                          lambda e: speech.append((call.cleared, e)))
    answer = tone_pcm24k(1000)
    item_id = await fake.play_audio(answer, chunk_ms=100, finish=False)
    await call.wait_received(len(answer))
    call.played_ms = 437.5  # what the call says it has played of the answer
    await fake.speech_started(audio_start_ms=1200)
    trunc = await fake.wait_for("conversation.item.truncate")
    assert trunc["item_id"] == item_id
    assert trunc["content_index"] == 0
    assert trunc["audio_end_ms"] == 437
    assert call.cleared == 1 and speech[0][0] == 1  # cleared before the handler ran
    await fake.wait_until(lambda: any(e["type"] == "conversation.item.truncated"
                                      for e in fake.sent_events))
    assert not any(e["type"] == "error" for e in fake.sent_events)
    await ai.close()


async def test_second_answer_position_is_relative_to_its_start(fake: FakeRealtimeServer) -> None:
    ai = await connect(fake)
    call = CallLike(PCM16_24K)
    ai.send_media_to(call)
    await fake.wait_for("session.update")
    first = tone_pcm24k(300)
    await fake.play_audio(first)
    await call.wait_received(len(first))
    second = tone_pcm24k(500)
    item2 = await fake.play_audio(second, finish=False)
    await call.wait_received(len(first) + len(second))
    call.played_ms = 300 + 250  # all of the first, half of the second
    await fake.speech_started()
    trunc = await fake.wait_for("conversation.item.truncate")
    assert (trunc["item_id"], trunc["audio_end_ms"]) == (item2, 250)
    await ai.close()


# -- closing -------------------------------------------------------------------------
async def test_server_close_dispatches_websocket_closed(fake: FakeRealtimeServer) -> None:
    seen: list[Event] = []
    ai = await connect(fake, on_websocket_closed=seen.append)
    call = CallLike(PCMU_8K)  # the call must survive the AI going away
    call.send_media_to(ai)
    ai.send_media_to(call)
    closed: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    ai.add_event_listener(E.WebSocketClosed, closed.set_result)
    await fake.wait_for("session.update", count=2)
    await fake.close_connection(1011, "server went away")
    ev = await asyncio.wait_for(closed, 5)
    assert (ev.code, ev.reason) == (1011, "server went away")
    assert ev.client is ai and seen == [ev]
    assert ai.closed
    assert call.hangups == 0
    assert ai.media_sinks == [] and call.media_source is None
    call.push(PCMU_8K.silence())  # the call keeps working
    await ai.close()  # idempotent, no second event
    assert len(seen) == 1


async def test_client_close_reports_1000(fake: FakeRealtimeServer) -> None:
    ai = await connect(fake)
    closed: list[Event] = []
    ai.add_event_listener(E.WebSocketClosed, closed.append)
    await fake.wait_for("session.update")
    await ai.close()
    assert [e.code for e in closed] == [1000]
    await fake.wait_until(lambda: not fake.connected)
    assert fake.closed_by_client[-1][0] == 1000


async def test_server_error_event_is_dispatched(fake: FakeRealtimeServer) -> None:
    ai = await connect(fake)
    errors: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    ai.add_event_listener(E.Error, errors.set_result)
    await fake.wait_for("session.update")
    generic: list[Event] = []
    ai.add_event_listener(VoiceAIEvents.Error, generic.append)
    ai.response_cancel()  # nothing in progress: the server answers with an error
    ev = await asyncio.wait_for(errors, 5)
    assert ev.data["error"]["code"] == "response_cancel_not_active"
    await until(lambda: generic)
    (err,) = generic
    assert err.message == ("openai reported an error (invalid_request_error/"
                           "response_cancel_not_active): Cancellation failed: no active "
                           "response found")
    assert err.data == ev.data and err.client is ai and not ai.closed
    await ai.close()


async def test_malformed_frames_are_error_events_and_the_session_goes_on(
    fake: FakeRealtimeServer,
) -> None:
    ai = await connect(fake)
    errors: list[Event] = []
    ai.add_event_listener(VoiceAIEvents.Error, errors.append)
    tools: list[Event] = []
    ai.add_event_listener(VoiceAIEvents.ToolCall, tools.append)
    await fake.wait_for("session.update")
    await fake.send_raw("{not json")
    await fake.send_raw("[1, 2]")
    await fake.send_raw(b"\xff\xfe binary")
    # valid JSON in a shape the client cannot follow (the audio is not base64 text)
    await fake.send_raw(json.dumps({"type": "response.output_audio.delta", "delta": 5,
                                    "item_id": "item_x", "content_index": 0}))
    await fake.send_raw("x" * 500)
    call_id = await fake.function_call("lookup", {"order": "42"})
    await until(lambda: tools)
    assert tools[0].call_id == call_id and not ai.closed
    messages = [e.message for e in errors]
    assert messages[0] == ("malformed JSON from openai: Expecting property name enclosed in "
                           "double quotes: line 1 column 2 (char 1): '{not json'")
    assert messages[1] == "malformed JSON from openai: not a JSON object: '[1, 2]'"
    assert messages[2].startswith("malformed JSON from openai: ") and "binary" in messages[2]
    assert messages[3].startswith(
        "malformed event from openai: 'response.output_audio.delta' (TypeError: ")
    assert messages[4].endswith("... (500 chars)") and len(messages[4]) < 300
    assert len(errors) == 5 and errors[0].data == {"raw": "'{not json'"}
    await ai.close()


# -- the fake itself ---------------------------------------------------------------------
def test_fake_rejects_beta_and_malformed_server_events() -> None:
    with pytest.raises(InvalidEvent):
        validate_server_event({"type": "response.audio.delta", "event_id": "e",
                               "response_id": "r", "item_id": "i", "output_index": 0,
                               "content_index": 0, "delta": ""})
    with pytest.raises(InvalidEvent):
        validate_server_event({"type": "response.output_audio.delta", "event_id": "e"})
    with pytest.raises(InvalidEvent, match="unknown keys"):
        validate_server_event({"type": "input_audio_buffer.cleared", "event_id": "e",
                               "bogus": 1})


async def test_fake_answers_invalid_client_events_with_error() -> None:
    from websockets.asyncio.client import connect as ws_connect

    async with FakeRealtimeServer(api_key=KEY) as fake:
        async with ws_connect(f"{fake.ws_url}/realtime?model=m",
                              additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            await ws.recv()  # session.created
            # beta shape: input_audio_format at the session's top level
            await ws.send('{"type": "session.update", "session": {"type": "realtime", '
                          '"input_audio_format": "pcm16"}}')
            reply = json.loads(await ws.recv())
        assert reply["type"] == "error"
        assert len(fake.invalid_received) == 1


async def test_tool_call_surfaces_as_the_common_voice_ai_event(fake: FakeRealtimeServer) -> None:
    from connectors.base import VoiceAIEvents

    ai = await connect(fake)
    calls: list[Event] = []

    def on_tool(e: Event) -> None:
        calls.append(e)
        ai.send_tool_result(e.call_id, {"temperature_c": 21})

    ai.add_event_listener(VoiceAIEvents.ToolCall, on_tool)
    await fake.wait_for("session.update")
    call_id = await fake.function_call("weather", {"city": "Oslo"})
    await fake.wait_for("response.create")
    [ev] = calls
    assert (ev.event_name, ev.name, ev.call_id, ev.arguments) == (
        VoiceAIEvents.ToolCall, "weather", call_id, {"city": "Oslo"})
    assert ev.data["type"] == "response.function_call_arguments.done" and ev.client is ai
    items = [e for e in fake.received_events if e["type"] == "conversation.item.create"]
    assert items[-1]["item"]["output"] == '{"temperature_c": 21}'
    await ai.close()


# -- per-turn latency ----------------------------------------------------------------
async def test_turn_latency_once_per_user_turn_into_the_cdr(fake: FakeRealtimeServer) -> None:
    session = FakeSession()
    with session.current():
        ai = await connect(fake)
    call = CallLike(PCM16_24K)
    ai.send_media_to(call)
    turns: list[tuple[int, Event]] = []  # (bytes the call had when the event fired, event)
    ai.add_event_listener(VoiceAIEvents.TurnLatency,
                          lambda e: turns.append((len(call.received), e)))
    assert E.TurnLatency == VoiceAIEvents.TurnLatency
    await fake.wait_for("session.update")

    # a response the scenario asks for without user speech (a greeting): no user turn
    greeting = tone_pcm24k(200)
    fake.queue_response(lambda f: f.play_audio(greeting))
    ai.response_create(instructions="Greet the caller.")
    await call.wait_received(len(greeting))
    assert turns == [] and session.record.voice_ai_turns == []

    # 1. speech_stopped -> committed -> the response server VAD creates -> audio
    answer = tone_pcm24k(300)
    await fake.user_turn(audio_end_ms=1500, reply=lambda f: f.play_audio(answer))
    await call.wait_received(len(greeting) + len(answer))
    [(had, ev)] = turns
    assert had == len(greeting)  # timed at the answer's first byte, before it was emitted
    assert ev.turn == 1 and ev.vendor == "openai" and ev.client is ai
    assert ev.speech_end_to_audio_ms is not None and ev.speech_end_to_audio_ms >= 0
    assert ev.stt_ms is None and ev.llm_first_token_ms is None and ev.tts_first_byte_ms is None
    assert session.record.voice_ai_turns == [
        {"vendor": "openai", "turn": 1, "speech_end_to_audio_ms": ev.speech_end_to_audio_ms,
         "stt_ms": None, "llm_first_token_ms": None, "tts_first_byte_ms": None}]

    # 2. answered by a function call first: the audio after the tool result counts, once
    ai.add_event_listener(VoiceAIEvents.ToolCall,
                          lambda e: ai.send_tool_result(e.call_id, {"temperature_c": 21}))
    after_tool = tone_pcm24k(200)
    fake.queue_response(lambda f: f.play_audio(after_tool))
    await fake.user_turn(audio_start_ms=2000, audio_end_ms=3000,
                         reply=lambda f: f.function_call("weather", {"city": "Oslo"}))
    total = len(greeting) + len(answer) + len(after_tool)
    await call.wait_received(total)
    assert [e.turn for _, e in turns] == [1, 2]
    assert turns[1][0] == total - len(after_tool)

    # 3. a barge-in'd answer still reports its first audio; the barge-in itself does not
    cut = tone_pcm24k(1000)
    await fake.user_turn(audio_start_ms=4000, audio_end_ms=5000,
                         reply=lambda f: f.play_audio(cut, finish=False))
    await call.wait_received(total + len(cut))
    call.played_ms = call.input_format.duration_ms(total) + 100
    await fake.speech_started(audio_start_ms=5200)
    await fake.wait_for("conversation.item.truncate")
    assert [e.turn for _, e in turns] == [1, 2, 3]

    # a user turn answered with no audio reports nothing
    await fake.user_turn(audio_start_ms=6000, audio_end_ms=6500)
    await fake.wait_until(lambda: fake.sent_events[-1]["type"] == "response.done")
    await asyncio.sleep(0.05)
    assert [e.turn for _, e in turns] == [1, 2, 3]
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1, 2, 3]
    assert all(t["speech_end_to_audio_ms"] >= 0 for t in session.record.voice_ai_turns)
    assert session.failures == []
    await ai.close()
