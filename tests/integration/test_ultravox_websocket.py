"""The Ultravox connector (httpx + websockets) against the local Ultravox fake.

Every message either side sends is checked against the field lists documented in
:mod:`tests.fakes.fake_ultravox` (``invalid_received`` / ``invalid_sent`` must stay
empty).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ConnectOptions, ConnectorError, VoiceAIEvents
from connectors.ultravox import Ultravox, WebSocketAPIClient
from gateway.media.format import PCM16_8K, PCM16_16K, PCM16_24K
from gateway.runtime.events import Event
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_session import FakeSession
from tests.fakes.fake_ultravox import FakeUltravoxServer

E = Ultravox.WebSocketAPIEvents
KEY = "uv-test-secret-0123456789"
FAST = ConnectOptions(retries=0, backoff=0.01, timeout=5.0)


class CallLike(FakeCall):
    """A call stand-in whose clear marks everything received as played."""

    def clear_media_buffer(self) -> None:
        super().clear_media_buffer()
        self.played_ms = self.input_format.duration_ms(len(self.received))


def tone(rate: int, ms: int, hz: float = 440.0) -> bytes:
    n = rate * ms // 1000
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * hz * i / rate))
                                   for i in range(n)))


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(cond: Any, timeout: float = 5.0) -> None:
    """Wait for a client-side condition (the fake only wakes on what it receives)."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def _check_clean(server: FakeUltravoxServer) -> None:
    assert server.invalid_received == []
    assert server.invalid_sent == []


@pytest.fixture
async def fake() -> AsyncIterator[FakeUltravoxServer]:
    async with FakeUltravoxServer(api_key=KEY) as server:
        yield server
        _check_clean(server)


@pytest.fixture
async def echo_fake() -> AsyncIterator[FakeUltravoxServer]:
    async with FakeUltravoxServer(mode="echo", api_key=KEY) as server:
        yield server
        _check_clean(server)


async def connect(fake: FakeUltravoxServer, **kw: Any) -> WebSocketAPIClient:
    kw.setdefault("connect_options", FAST)
    kw.setdefault("api_key", KEY)
    return await Ultravox.create_websocket_api_client(base_url=fake.base_url, **kw)


# -- creating and joining ------------------------------------------------------------
async def test_create_call_body_header_and_join(fake: FakeUltravoxServer) -> None:
    tools = [{"temporaryTool": {"modelToolName": "weather", "description": "Weather",
                                "client": {}}}]
    ai = await connect(fake, system_prompt="Be brief.", model="fixie-ai/ultravox",
                       voice="Mark", selected_tools=tools, input_sample_rate=8000,
                       output_sample_rate=24000, client_buffer_size_ms=5000,
                       max_duration="600s", first_speaker_settings={"agent": {}})
    started: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    ai.add_event_listener(E.CallStarted, started.set_result)
    [req] = fake.calls
    assert (req["method"], req["path"], req["status"]) == ("POST", "/api/calls", 201)
    assert req["api_key"] == KEY and req["authorization"] is None
    assert req["content_type"] == "application/json"
    assert req["body"] == {
        "systemPrompt": "Be brief.", "model": "fixie-ai/ultravox", "voice": "Mark",
        "selectedTools": tools, "maxDuration": "600s", "firstSpeakerSettings": {"agent": {}},
        "medium": {"serverWebSocket": {"inputSampleRate": 8000, "outputSampleRate": 24000,
                                       "clientBufferSizeMs": 5000}},
    }
    ev = await asyncio.wait_for(started, 5)
    assert ev.data == {"type": "call_started", "callId": req["response"]["callId"]}
    assert ev.client is ai and ai.call_id == req["response"]["callId"]
    assert ai.call["joinUrl"] == req["response"]["joinUrl"]
    assert fake.joins == 1
    assert ai.capabilities.input_formats == (PCM16_8K,)
    assert ai.capabilities.output_formats == (PCM16_24K,)
    assert (ai.input_format, ai.output_format) == (PCM16_8K, PCM16_24K)
    await ai.close()


async def test_agent_call_and_key_from_env(
    fake: FakeUltravoxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ULTRAVOX_API_KEY", KEY)
    ai = await Ultravox.create_websocket_api_client(
        agent_id="agent-42", base_url=fake.base_url, connect_options=FAST,
        template_context={"name": "Ann"})
    [req] = fake.calls
    assert req["path"] == "/api/agents/agent-42/calls" and req["api_key"] == KEY
    assert req["body"] == {"templateContext": {"name": "Ann"}, "medium": {"serverWebSocket": {
        "inputSampleRate": 16000, "outputSampleRate": 16000, "clientBufferSizeMs": 30000}}}
    await ai.close()


async def test_wrong_api_key_is_not_retried(fake: FakeUltravoxServer) -> None:
    with pytest.raises(ConnectorError, match="401") as info:
        await Ultravox.create_websocket_api_client(
            api_key="uv-wrong-key", base_url=fake.base_url,
            connect_options=ConnectOptions(retries=3, backoff=0.01))
    assert [c["status"] for c in fake.calls] == [401]
    assert "Invalid API key" in str(info.value) and not info.value.retryable
    assert fake.joins == 0


async def test_missing_api_key_is_a_connector_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ULTRAVOX_API_KEY", raising=False)
    with pytest.raises(ConnectorError, match="ULTRAVOX_API_KEY"):
        await Ultravox.create_websocket_api_client(base_url="http://127.0.0.1:9/api")


async def test_server_unavailable_then_retry_succeeds() -> None:
    async with FakeUltravoxServer(api_key=KEY, reject_calls=1, reject_status=503) as fake:
        ai = await connect(fake, connect_options=ConnectOptions(retries=1, backoff=0.01))
        assert [c["status"] for c in fake.calls] == [503, 201]
        assert fake.joins == 1
        await ai.close()
        _check_clean(fake)


async def test_server_errors_exhaust_retries() -> None:
    async with FakeUltravoxServer(api_key=KEY, reject_calls=5, reject_status=500) as fake:
        with pytest.raises(ConnectorError, match="HTTP 500") as info:
            await connect(fake, connect_options=ConnectOptions(retries=2, backoff=0.01))
        assert [c["status"] for c in fake.calls] == [500, 500, 500]
        assert info.value.retryable


async def test_connection_refused_raises_connector_error_after_retries() -> None:
    port = free_tcp_port()
    with pytest.raises(ConnectorError, match="2 attempt") as info:
        await Ultravox.create_websocket_api_client(
            api_key=KEY, base_url=f"http://127.0.0.1:{port}/api",
            connect_options=ConnectOptions(retries=1, backoff=0.01, timeout=5.0))
    assert info.value.retryable
    assert KEY not in str(info.value)


async def test_refused_join_is_a_connector_error() -> None:
    async with FakeUltravoxServer(api_key=KEY, refuse_join=True) as fake:
        with pytest.raises(ConnectorError, match="403 on the WebSocket join"):
            await connect(fake, connect_options=ConnectOptions(retries=2, backoff=0.01))
        assert [c["status"] for c in fake.calls] == [201]  # 403 is not retried


async def test_api_key_never_logged(
    fake: FakeUltravoxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ai = await connect(fake)
    await fake.wait_connected()
    with pytest.raises(ConnectorError) as info:
        await Ultravox.create_websocket_api_client(
            api_key=KEY + "x", base_url=fake.base_url, connect_options=FAST)
    await ai.close()
    assert KEY not in caplog.text
    assert KEY not in repr(ai) and KEY not in str(info.value)
    assert KEY not in str(vars(ai))


# -- media ---------------------------------------------------------------------------
async def test_echo_audio_both_ways_at_16k(echo_fake: FakeUltravoxServer) -> None:
    ai = await connect(echo_fake)
    call = CallLike(PCM16_16K)
    call.send_media_to(ai)
    ai.send_media_to(call)
    assert (ai.input_format, ai.output_format) == (PCM16_16K, PCM16_16K)
    audio = tone(16000, 400)
    for i in range(0, len(audio), 640):  # 20 frames of 20 ms
        call.push(audio[i:i + 640])
    await echo_fake.wait_audio(len(audio))
    await call.wait_received(len(audio))
    assert bytes(echo_fake.received_audio) == audio  # raw PCM16, no transcoding
    assert bytes(call.received) == audio
    assert all(len(c) == 640 for c in echo_fake.audio_chunks)  # one binary frame per 20 ms
    assert echo_fake.received_messages == []  # audio travels as binary frames only
    await ai.close()


async def test_audio_rates_differ_per_direction(fake: FakeUltravoxServer) -> None:
    ai = await connect(fake, input_sample_rate=8000, output_sample_rate=24000)
    call = CallLike(PCM16_8K)  # the route edge resamples the 24 kHz answer
    call.send_media_to(ai)
    ai.send_media_to(call)
    up = tone(8000, 200)
    for i in range(0, len(up), 320):
        call.push(up[i:i + 320])
    await fake.wait_audio(len(up))
    assert bytes(fake.received_audio) == up
    assert fake.input_sample_rate == 8000 and fake.output_sample_rate == 24000
    answer = tone(24000, 300)
    await fake.play_audio(answer)
    await call.wait_received(PCM16_8K.frame_bytes(300) - 4)
    assert abs(len(call.received) - PCM16_8K.frame_bytes(300)) <= 4
    await ai.close()


async def test_downstream_audio_without_route_goes_nowhere(fake: FakeUltravoxServer) -> None:
    ai = await connect(fake, output_sample_rate=24000)
    sink = CallLike(PCM16_24K)
    ai.send_media_to(sink)
    await fake.wait_connected()
    await fake.send_audio(b"\x01\x02\x03")  # odd length: the last byte waits for its pair
    await fake.send_audio(b"\x04")
    await sink.wait_received(4)
    assert bytes(sink.received) == b"\x01\x02\x03\x04"
    await ai.close()


# -- data messages ------------------------------------------------------------------------
async def test_tool_call_round_trip(fake: FakeUltravoxServer) -> None:
    ai = await connect(fake)
    calls: list[Event] = []
    raw: list[Event] = []

    def on_tool(e: Event) -> None:
        calls.append(e)
        ai.send_tool_result(e.call_id, {"temperature_c": 21})

    ai.add_event_listener(VoiceAIEvents.ToolCall, on_tool)
    ai.add_event_listener(E.ClientToolInvocation, raw.append)
    await fake.wait_connected()
    inv = await fake.client_tool_invocation("weather", {"city": "Oslo"})
    result = await fake.wait_for("client_tool_result")
    [ev] = calls
    assert (ev.event_name, ev.name, ev.call_id, ev.arguments) == (
        VoiceAIEvents.ToolCall, "weather", inv, {"city": "Oslo"})
    assert ev.data["type"] == "client_tool_invocation" and ev.client is ai
    assert raw and raw[0].data is ev.data
    assert result == {"type": "client_tool_result", "invocationId": inv,
                      "result": '{"temperature_c": 21}'}
    # a plain string result, a response type and an error result
    ai.send_tool_result(inv, "done", response_type="hang-up", agent_reaction="speaks-once")
    second = await fake.wait_for("client_tool_result", count=2)
    assert second == {"type": "client_tool_result", "invocationId": inv, "result": "done",
                      "responseType": "hang-up", "agentReaction": "speaks-once"}
    ai.send_tool_result(inv, None, error_type="implementation-error", error_message="boom")
    third = await fake.wait_for("client_tool_result", count=3)
    assert third == {"type": "client_tool_result", "invocationId": inv,
                     "errorType": "implementation-error", "errorMessage": "boom"}
    await ai.close()


async def test_playback_clear_buffer_clears_sink_before_handlers(
    fake: FakeUltravoxServer,
) -> None:
    ai = await connect(fake)
    call = CallLike(PCM16_16K)
    call.send_media_to(ai)
    ai.send_media_to(call)
    seen: list[int] = []
    ai.add_event_listener(E.PlaybackClearBuffer, lambda e: seen.append(call.cleared))
    answer = tone(16000, 1000)
    await fake.play_audio(answer)
    await call.wait_received(len(answer))
    assert call.queued_ms == 1000.0
    await fake.playback_clear_buffer()
    await until(lambda: bool(seen))
    assert seen == [1] and call.cleared == 1  # cleared before the handler ran
    assert call.queued_ms == 0.0
    await ai.close()


async def test_barge_in_off_leaves_playout_alone(fake: FakeUltravoxServer) -> None:
    ai = await connect(fake, barge_in=False)
    call = CallLike(PCM16_16K)
    ai.send_media_to(call)
    got: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    ai.add_event_listener(E.PlaybackClearBuffer, got.set_result)
    await fake.wait_connected()
    await fake.playback_clear_buffer()
    await asyncio.wait_for(got, 5)
    assert call.cleared == 0
    await ai.close()


async def test_state_transcript_and_client_messages(fake: FakeUltravoxServer) -> None:
    ai = await connect(fake)
    events: list[Event] = []
    for name in (E.State, E.Transcript, E.Pong):
        ai.add_event_listener(name, events.append)
    await fake.wait_connected()
    await fake.transcript("Hello there", role="agent", ordinal=1)
    ai.send_text("What's the weather?")
    ai.send_text("context only", defer_response=True)
    ai.set_output_medium("text")
    ai.forced_agent_message("One moment.", uninterruptible=True)
    ai.ping(12.5)
    await fake.wait_for("ping")
    await until(lambda: any(e.event_name == E.Pong for e in events))
    types = [m["type"] for m in fake.received_messages]
    assert types == ["input_text_message", "input_text_message", "set_output_medium",
                     "forced_agent_message", "ping"]
    assert fake.received_messages[1] == {"type": "input_text_message", "text": "context only",
                                         "deferResponse": True}
    assert fake.received_messages[2] == {"type": "set_output_medium", "medium": "text"}
    names = [e.event_name for e in events]
    assert E.State in names and E.Transcript in names
    tr = next(e for e in events if e.event_name == E.Transcript)
    assert tr.data["text"] == "Hello there" and tr.data["role"] == "agent"
    assert ai.state == "listening"
    assert next(e for e in events if e.event_name == E.Pong).data["timestamp"] == 12.5
    await ai.close()


async def test_send_event_passes_any_message(fake: FakeUltravoxServer) -> None:
    ai = await connect(fake)
    await fake.wait_connected()
    sent = await ai.send_event({"type": "hang_up", "message": "Bye"})
    assert sent is True
    msg = await fake.wait_for("hang_up")
    assert msg == {"type": "hang_up", "message": "Bye"}
    await ai.close()


async def test_malformed_json_dispatches_error(fake: FakeUltravoxServer) -> None:
    ai = await connect(fake)
    errors: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    unknown: list[Event] = []
    generic: list[Event] = []
    ai.add_event_listener(E.Error, errors.set_result)
    ai.add_event_listener(E.Unknown, unknown.append)
    ai.add_event_listener(VoiceAIEvents.Error, generic.append)
    await fake.wait_connected()
    await fake.send_raw("{not json")
    ev = await asyncio.wait_for(errors, 5)
    assert ev.data["raw"] == "{not json" and ev.client is ai
    assert ev.message == ("malformed JSON from ultravox: Expecting property name enclosed in "
                          "double quotes: line 1 column 2 (char 1): '{not json'")
    assert [(e.message, e.data) for e in generic] == [(ev.message, {"raw": "{not json"})]
    await fake.send_raw_text('{"type": "something_new", "x": 1}')
    await fake.send_raw_text('{"type": "state", "state": "speaking"}')
    await until(lambda: ai.state == "speaking")
    assert [e.data["type"] for e in unknown] == ["something_new"]
    assert not ai.closed
    await ai.close()


# -- closing -------------------------------------------------------------------------
async def test_server_close_dispatches_websocket_closed(fake: FakeUltravoxServer) -> None:
    seen: list[Event] = []
    ai = await connect(fake, on_websocket_closed=seen.append)
    call = CallLike(PCM16_16K)  # the call must survive the AI going away
    call.send_media_to(ai)
    ai.send_media_to(call)
    closed: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
    ai.add_event_listener(E.WebSocketClosed, closed.set_result)
    await fake.wait_connected()
    await fake.close_connection(4000, "call ended")
    ev = await asyncio.wait_for(closed, 5)
    assert ev.event_name == VoiceAIEvents.WebSocketClosed
    assert (ev.code, ev.reason) == (4000, "call ended") and ev.client is ai
    assert seen == [ev] and ai.closed
    assert call.hangups == 0
    assert ai.media_sinks == [] and call.media_source is None
    call.push(PCM16_16K.silence())  # the call keeps working
    assert (await ai.send_text("late")) is False
    await ai.close()  # idempotent, no second event
    assert len(seen) == 1


async def test_error_close_is_an_error_event_then_websocket_closed(
        fake: FakeUltravoxServer) -> None:
    ai = await connect(fake)
    seen: list[Event] = []
    ai.add_event_listener(VoiceAIEvents.Error, seen.append)
    ai.add_event_listener(VoiceAIEvents.WebSocketClosed, seen.append)
    await fake.wait_connected()
    await fake.close_connection(1011, "agent failed")
    await until(lambda: len(seen) == 2)
    assert [e.event_name for e in seen] == [VoiceAIEvents.Error, VoiceAIEvents.WebSocketClosed]
    assert seen[0].message == f"ultravox closed the call {ai.call_id}: code 1011: agent failed"
    assert (seen[1].code, seen[1].reason) == (1011, "agent failed")
    await ai.close()
    assert len(seen) == 2


async def test_client_close_reports_1000(fake: FakeUltravoxServer) -> None:
    ai = await connect(fake)
    closed: list[Event] = []
    ai.add_event_listener(E.WebSocketClosed, closed.append)
    await fake.wait_connected()
    await ai.close()
    assert [e.code for e in closed] == [1000]
    await fake.wait_until(lambda: not fake.connected)
    assert fake.closed_by_client[-1][0] == 1000


async def test_silent_server_times_out_as_connector_error() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hold the connection open, say nothing
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectorError, match="timed out"):
            await Ultravox.create_websocket_api_client(
                api_key=KEY, base_url=f"http://127.0.0.1:{port}/api",
                connect_options=ConnectOptions(retries=0, timeout=0.2))
    finally:
        server.close()
        await server.wait_closed()


# -- per-turn latency ----------------------------------------------------------------
async def test_turn_latency_from_state_transcripts_and_first_audio(
        fake: FakeUltravoxServer) -> None:
    session = FakeSession()
    with session.current():
        ai = await connect(fake)
    call = CallLike(PCM16_16K)
    ai.send_media_to(call)
    turns: list[tuple[int, Event]] = []  # (bytes the call had when the event fired, event)
    ai.add_event_listener(VoiceAIEvents.TurnLatency,
                          lambda e: turns.append((len(call.received), e)))
    assert E.TurnLatency == VoiceAIEvents.TurnLatency
    await fake.wait_connected()
    got = 0

    async def answered(audio: bytes) -> None:
        nonlocal got
        got += len(audio)
        await call.wait_received(got)

    # the agent greets first (thinking -> speaking without user speech): no user turn
    await fake.state("thinking")
    await fake.play_audio(tone(16000, 200))
    await answered(tone(16000, 200))
    assert turns == [] and session.record.voice_ai_turns == []

    # 1. final transcript, thinking, speaking + audio: timed at the first audio frame
    answer = tone(16000, 300)
    before = got
    await fake.user_turn("What is the weather in Oslo", ordinal=1, answer=answer)
    await answered(answer)
    [(had, ev)] = turns
    assert had == before and ev.turn == 1 and ev.vendor == "ultravox" and ev.client is ai
    assert ev.speech_end_to_audio_ms is not None and ev.speech_end_to_audio_ms >= 0
    assert (ev.stt_ms, ev.llm_first_token_ms, ev.tts_first_byte_ms) == (None, None, None)
    assert session.record.voice_ai_turns == [
        {"vendor": "ultravox", "turn": 1, "speech_end_to_audio_ms": ev.speech_end_to_audio_ms,
         "stt_ms": None, "llm_first_token_ms": None, "tts_first_byte_ms": None}]

    # 2. the final transcript after "thinking"; 3. the user's transcripts lag the audio:
    # the turn is reported when they arrive, timed at the first audio frame
    await fake.user_turn("And tomorrow", ordinal=3, final_first=False, answer=answer)
    await answered(answer)
    await fake.user_turn("Thanks a lot", ordinal=5, transcript_late=True, answer=answer)
    await answered(answer)
    assert [e.turn for _, e in turns] == [1, 2, 3]
    assert turns[2][0] > got - len(answer)  # the first frame had arrived by then

    # 4. a barge-in'd answer was reported at its first audio; the barge-in is not a turn
    await fake.user_turn("Tell me a long story", ordinal=7)
    before = got
    await fake.play_audio(tone(16000, 1000), finish=False)
    await answered(tone(16000, 1000))
    assert turns[3][0] == before
    await fake.playback_clear_buffer()
    await fake.state("listening")
    # a text message (no voice transcript) answered with audio is not a user turn
    await fake.send({"type": "transcript", "role": "user", "medium": "text",
                     "text": "typed", "final": True, "ordinal": 9})
    await fake.state("thinking")
    await fake.play_audio(answer)
    await answered(answer)
    assert [e.turn for _, e in turns] == [1, 2, 3, 4]
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1, 2, 3, 4]
    assert all(t["speech_end_to_audio_ms"] >= 0 for t in session.record.voice_ai_turns)
    assert session.failures == []
    await ai.close()
