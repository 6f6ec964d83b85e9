"""The real ``google-genai`` SDK through the Gemini connector against the local Live fake.

The fake serves TLS with a trustme test CA (the SDK forces ``wss`` with an API key);
the SDK trusts it through ``SSL_CERT_FILE`` (or an SSL context in ``http_options``).
Every message the fake sends is validated against the SDK's ``LiveServerMessage``
and every message the connector sends against ``LiveClientMessage``
(``fake.invalid_received`` / ``invalid_sent`` must stay empty).
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ConnectOptions, ConnectorError, VoiceAIEvents
from connectors.gemini import Gemini, LiveAPIClient
from gateway.media.format import PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat, AudioFrame
from gateway.runtime.events import Event
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_gemini_live import FakeGeminiLiveServer
from tests.fakes.fake_session import FakeSession

E = Gemini.LiveAPIEvents
KEY = "gemini-test-key-0123456789"
FAST = ConnectOptions(retries=0, backoff=0.01, timeout=5.0)


class CallLike(FakeCall):
    """A call stand-in whose ``queued_ms`` is what arrived since the last clear."""

    def __init__(self, fmt: AudioFormat) -> None:
        super().__init__(fmt)
        self._queued = 0

    @property
    def queued_ms(self) -> float:
        return self.input_format.duration_ms(self._queued)

    def _on_media(self, frame: AudioFrame) -> None:
        super()._on_media(frame)
        self._queued += len(frame.data)

    def clear_media_buffer(self) -> None:
        super().clear_media_buffer()
        self._queued = 0


def tone(rate: int, ms: int, hz: float = 440.0) -> bytes:
    n = rate * ms // 1000
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * hz * i / rate))
                                   for i in range(n)))


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def next_event(ai: LiveAPIClient, name: str) -> asyncio.Future[Event]:
    fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

    def on(ev: Event) -> None:
        if not fut.done():
            fut.set_result(ev)

    ai.add_event_listener(name, on)
    return fut


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeGeminiLiveServer]:
    async with FakeGeminiLiveServer(api_key=KEY) as server:
        monkeypatch.setenv("SSL_CERT_FILE", server.ca_file)
        yield server
        assert server.invalid_received == []
        assert server.invalid_sent == []


@pytest.fixture
async def echo_fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeGeminiLiveServer]:
    async with FakeGeminiLiveServer(mode="echo", api_key=KEY, echo_turn_ms=200) as server:
        monkeypatch.setenv("SSL_CERT_FILE", server.ca_file)
        yield server
        assert server.invalid_received == []
        assert server.invalid_sent == []


async def connect(fake: FakeGeminiLiveServer, **kw: Any) -> LiveAPIClient:
    kw.setdefault("connect_options", FAST)
    kw.setdefault("api_key", KEY)
    return await Gemini.create_live_api_client(base_url=fake.base_url, **kw)


# -- connecting ------------------------------------------------------------------------
async def test_connects_with_sdk_and_sends_setup(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake, model="gemini-live-2.5-flash-preview", instructions="Be brief.",
                       voice="Puck",
                       tools=[{"type": "function", "name": "get_weather",
                               "description": "Weather in a city",
                               "parameters": {"type": "object",
                                              "properties": {"city": {"type": "string"}}}}],
                       input_audio_transcription={}, output_audio_transcription={})
    setup_ev = await next_event(ai, E.SetupComplete)
    ev = await asyncio.wait_for(setup_ev, 5)
    assert ev.data == {"setupComplete": {}} and ev.client is ai
    [hs] = fake.handshakes
    assert hs["api_key"] == KEY and hs["status"] == 101
    assert hs["path"].endswith(".GenerativeService.BidiGenerateContent")
    setup = fake.setup
    assert setup is not None
    assert setup["model"] == "models/gemini-live-2.5-flash-preview"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert setup["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    voice = setup["generationConfig"]["speechConfig"]
    assert "Puck" in str(voice)
    [decl] = setup["tools"][0]["functionDeclarations"]
    assert decl["name"] == "get_weather"
    assert "inputAudioTranscription" in setup and "outputAudioTranscription" in setup
    assert ai.input_format == PCM16_16K and ai.output_format == PCM16_24K
    await ai.close()


async def test_api_key_from_env(fake: FakeGeminiLiveServer,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    ai = await Gemini.create_live_api_client(base_url=fake.base_url, connect_options=FAST)
    assert fake.handshakes[-1]["api_key"] == KEY
    await ai.close()


async def test_ssl_context_through_http_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    async with FakeGeminiLiveServer(api_key=KEY) as fake:
        ai = await Gemini.create_live_api_client(
            api_key=KEY, base_url=fake.base_url, connect_options=FAST,
            http_options={"async_client_args": {"ssl": fake.client_ssl_context()},
                          "api_version": "v1alpha"})
        assert fake.handshakes[-1]["version"] == "v1alpha"
        await ai.close()
        assert fake.invalid_received == []


async def test_untrusted_certificate_is_a_connector_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    async with FakeGeminiLiveServer(api_key=KEY) as fake:
        with pytest.raises(ConnectorError, match="CERTIFICATE_VERIFY_FAILED") as info:
            await Gemini.create_live_api_client(
                api_key=KEY, base_url=fake.base_url,
                connect_options=ConnectOptions(retries=2, backoff=0.01, timeout=5.0))
        assert not info.value.retryable


async def test_missing_api_key_is_a_connector_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    with pytest.raises(ConnectorError):
        await Gemini.create_live_api_client(base_url="https://127.0.0.1:9")


async def test_connection_refused_raises_connector_error_after_retries() -> None:
    port = free_tcp_port()
    with pytest.raises(ConnectorError, match="2 attempt") as info:
        await Gemini.create_live_api_client(
            api_key=KEY, base_url=f"https://127.0.0.1:{port}",
            connect_options=ConnectOptions(retries=1, backoff=0.01, timeout=5.0))
    assert info.value.retryable
    assert info.value.vendor == "gemini"
    assert KEY not in str(info.value)


async def test_wrong_api_key_is_not_retried(fake: FakeGeminiLiveServer) -> None:
    with pytest.raises(ConnectorError, match=r"1007.*API key not valid") as info:
        await Gemini.create_live_api_client(
            api_key="wrong-key", base_url=fake.base_url,
            connect_options=ConnectOptions(retries=3, backoff=0.01))
    assert not info.value.retryable
    assert len(fake.handshakes) == 1


async def test_server_unavailable_then_retry_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeGeminiLiveServer(api_key=KEY, reject_handshakes=1,
                                    reject_status=503) as fake:
        monkeypatch.setenv("SSL_CERT_FILE", fake.ca_file)
        ai = await connect(fake, connect_options=ConnectOptions(retries=1, backoff=0.01))
        assert [h["status"] for h in fake.handshakes] == [503, 101]
        await ai.close()


async def test_silent_server_times_out_as_connector_error() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectorError, match="timed out"):
            await Gemini.create_live_api_client(
                api_key=KEY, base_url=f"https://127.0.0.1:{port}",
                connect_options=ConnectOptions(retries=0, timeout=0.3))
    finally:
        server.close()
        await server.wait_closed()


# -- audio -------------------------------------------------------------------------------
async def test_echo_audio_both_ways_in_the_promised_formats(
    echo_fake: FakeGeminiLiveServer,
) -> None:
    ai = await connect(echo_fake)
    call = CallLike(PCM16_8K)
    call.send_media_to(ai)
    ai.send_media_to(call)
    # The route edges resample: 8 kHz call -> 16 kHz in, 24 kHz out -> 8 kHz call.
    assert ai.input_format == PCM16_16K and ai.output_format == PCM16_24K
    audio = tone(8000, 400)
    for i in range(0, len(audio), 320):  # 20 ms frames
        call.push(audio[i:i + 320])
    # 400 ms at 16 kHz PCM16 is 12800 bytes (resampler delay: allow a little less).
    await echo_fake.wait_audio(12000)
    assert {mime for _, mime in echo_fake.audio_chunks} == {"audio/pcm;rate=16000"}
    await call.wait_received(len(audio) * 9 // 10)
    sent_audio = [m for m in echo_fake.sent if "modelTurn" in m.get("serverContent", {})]
    assert sent_audio
    assert all(p["inlineData"]["mimeType"] == "audio/pcm;rate=24000"
               for m in sent_audio for p in m["serverContent"]["modelTurn"]["parts"])
    await echo_fake.wait_until(
        lambda: any(m.get("serverContent", {}).get("turnComplete") for m in echo_fake.sent))
    assert call.hangups == 0
    await ai.close()


async def test_model_audio_reaches_the_call(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake)
    call = CallLike(PCM16_8K)
    ai.send_media_to(call)
    turn = await next_event(ai, E.TurnComplete)
    transcript = await next_event(ai, E.OutputTranscription)
    await fake.play_audio(tone(24000, 300), transcript="Hello there")
    # 300 ms at 8 kHz PCM16 = 4800 bytes.
    await call.wait_received(4400)
    assert (await asyncio.wait_for(transcript, 5)).text == "Hello there"
    ev = await asyncio.wait_for(turn, 5)
    assert ev.data == {"serverContent": {"turnComplete": True}}
    await ai.close()


# -- tool calls ------------------------------------------------------------------------------
async def test_tool_call_round_trip(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake, tools=[{"function_declarations": [
        {"name": "get_weather", "parameters": {"type": "object",
                                               "properties": {"city": {"type": "string"}}}}]}])
    calls: list[Event] = []

    def on_tool(ev: Event) -> None:
        calls.append(ev)
        ev.client.send_tool_result(ev.call_id, {"output": f"sunny in {ev.arguments['city']}"})

    ai.add_event_listener(E.ToolCall, on_tool)
    assert E.ToolCall == VoiceAIEvents.ToolCall
    call_id = await fake.tool_call("get_weather", {"city": "Paris"})
    resp = await fake.wait_for("toolResponse")
    [ev] = calls
    assert ev.name == "get_weather" and ev.call_id == call_id
    assert ev.arguments == {"city": "Paris"}
    assert ev.data["toolCall"]["functionCalls"][0]["id"] == call_id
    assert resp == {"functionResponses": [
        {"id": call_id, "name": "get_weather", "response": {"output": "sunny in Paris"}}]}
    assert ai.pending_tool_calls == {}
    await ai.close()


async def test_tool_call_cancellation_forgets_the_call(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake)
    cancelled = await next_event(ai, E.ToolCallCancellation)
    call_id = await fake.tool_call("slow_lookup", {})
    await fake.tool_call_cancellation([call_id])
    ev = await asyncio.wait_for(cancelled, 5)
    assert ev.ids == [call_id]
    assert ai.pending_tool_calls == {}
    await ai.close()


# -- barge-in ---------------------------------------------------------------------------------
async def test_interrupted_clears_playout_before_the_event(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake)
    call = CallLike(PCM16_8K)
    ai.send_media_to(call)
    await fake.play_audio(tone(24000, 500), finish=False)
    await call.wait_received(7000)
    assert call.queued_ms > 0
    seen: list[tuple[int, float]] = []
    interrupted = await next_event(ai, E.Interrupted)
    ai.add_event_listener(E.Interrupted, lambda ev: seen.append((call.cleared, call.queued_ms)))
    await fake.interrupted()
    ev = await asyncio.wait_for(interrupted, 5)
    assert ev.data == {"serverContent": {"interrupted": True}}
    assert seen == [(1, 0.0)]
    await ai.close()


async def test_barge_in_off_leaves_playout(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake, barge_in=False)
    call = CallLike(PCM16_8K)
    ai.send_media_to(call)
    interrupted = await next_event(ai, E.Interrupted)
    await fake.interrupted()
    await asyncio.wait_for(interrupted, 5)
    assert call.cleared == 0
    await ai.close()


# -- failures ------------------------------------------------------------------------------------
async def test_server_close_dispatches_websocket_closed_once(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake)
    call = CallLike(PCM16_8K)
    call.send_media_to(ai)
    ai.send_media_to(call)
    closed: list[Event] = []
    ai.add_event_listener(VoiceAIEvents.WebSocketClosed, closed.append)
    done = await next_event(ai, E.WebSocketClosed)
    await fake.close_connection(1011, "Internal error occurred.")
    ev = await asyncio.wait_for(done, 5)
    assert (ev.code, ev.reason) == (1011, "Internal error occurred.")
    assert ai.closed and ai.close_code == 1011
    assert ai.media_sinks == [] and call.media_source is None and ai.media_source is None
    await ai.close()
    assert len(closed) == 1
    assert call.hangups == 0
    call.push(tone(8000, 20))  # the call keeps working; nothing routes to the dead client


async def test_client_close_dispatches_websocket_closed(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake)
    closed: list[Event] = []
    ai.add_event_listener(E.WebSocketClosed, closed.append)
    await ai.close()
    await ai.close()
    assert [(e.code, e.reason) for e in closed] == [(1000, "closed by client")]
    await fake.wait_until(lambda: not fake.connected)
    assert fake.closed_by_client and fake.closed_by_client[0][0] == 1000
    assert (await ai.send_tool_result("x", "late")) is False


async def test_malformed_message_is_an_error_event_and_the_session_survives(
    fake: FakeGeminiLiveServer,
) -> None:
    ai = await connect(fake)
    error = await next_event(ai, E.Error)
    generic: list[Event] = []
    ai.add_event_listener(VoiceAIEvents.Error, generic.append)
    await fake.send_raw("{not json")
    ev = await asyncio.wait_for(error, 5)
    assert ev.message == ("malformed JSON from gemini: Expecting property name enclosed in "
                          "double quotes: line 1 column 2 (char 1): '{not json'")
    assert not ai.closed
    await fake.send_raw("[1, 2]")
    await fake.send_raw('{"someField": 1}')
    tool = await next_event(ai, E.ToolCall)
    await fake.tool_call("ping", {})
    assert (await asyncio.wait_for(tool, 5)).name == "ping"
    assert [e.message for e in generic] == [
        ev.message,
        "malformed JSON from gemini: not a JSON object: '[1, 2]'",
        "malformed message from gemini: no field the Live API defines: '{\"someField\": 1}'",
    ]
    assert generic[0].data == {"raw": "'{not json'"} and not ai.closed
    await ai.close()


async def test_error_body_is_an_error_event(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake)
    vendor = await next_event(ai, E.Error)
    generic = await next_event(ai, VoiceAIEvents.Error)
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded"}}
    await fake.send_raw(json.dumps(body))
    ev = await asyncio.wait_for(generic, 5)
    assert ev.message == "gemini reported an error 429 RESOURCE_EXHAUSTED: Quota exceeded"
    assert ev.data == body
    assert (await asyncio.wait_for(vendor, 5)).message == ev.message
    assert not ai.closed
    await ai.close()


async def test_error_close_is_an_error_event_then_websocket_closed(
    fake: FakeGeminiLiveServer,
) -> None:
    ai = await connect(fake)
    seen: list[Event] = []
    ai.add_event_listener(VoiceAIEvents.Error, seen.append)
    ai.add_event_listener(VoiceAIEvents.WebSocketClosed, seen.append)
    await fake.close_connection(1007, "Request contains an invalid argument.")
    await fake.wait_until(lambda: not fake.connected)
    async with asyncio.timeout(5):
        while len(seen) < 2:
            await asyncio.sleep(0.005)
    assert [e.event_name for e in seen] == [VoiceAIEvents.Error, VoiceAIEvents.WebSocketClosed]
    assert seen[0].message == ("gemini closed the session: code 1007: Request contains an "
                               "invalid argument.")
    assert (seen[1].code, seen[1].reason) == (1007, "Request contains an invalid argument.")
    await ai.close()
    assert len(seen) == 2  # a client close reports no error


async def test_go_away_and_transcriptions_are_events(fake: FakeGeminiLiveServer) -> None:
    ai = await connect(fake)
    go_away = await next_event(ai, E.GoAway)
    heard = await next_event(ai, E.InputTranscription)
    await fake.input_transcription("what is the weather")
    await fake.go_away("5s")
    assert (await asyncio.wait_for(heard, 5)).text == "what is the weather"
    ev = await asyncio.wait_for(go_away, 5)
    assert ev.time_left == "5s" and ev.data == {"goAway": {"timeLeft": "5s"}}
    await ai.close()


async def test_text_and_client_content_are_valid_client_messages(
    fake: FakeGeminiLiveServer,
) -> None:
    ai = await connect(fake)
    assert await ai.send_text("hello")
    assert await ai.send_client_content("Say hi", turn_complete=True)
    assert await ai.send_audio_stream_end()
    await fake.wait_until(lambda: len(fake.received) >= 3)
    kinds = [next(iter(m)) for m in fake.received]
    assert kinds == ["realtimeInput", "clientContent", "realtimeInput"]
    assert fake.received[0]["realtimeInput"] == {"text": "hello"}
    assert fake.received[2]["realtimeInput"] == {"audioStreamEnd": True}
    await ai.close()


# -- per-turn latency ------------------------------------------------------------------------
async def test_turn_latency_from_server_voice_activity(fake: FakeGeminiLiveServer) -> None:
    session = FakeSession()
    with session.current():
        ai = await connect(fake, input_audio_transcription={})
    call = CallLike(PCM16_24K)
    ai.send_media_to(call)
    turns: list[tuple[int, Event]] = []  # (bytes the call had when the event fired, event)
    ai.add_event_listener(VoiceAIEvents.TurnLatency,
                          lambda e: turns.append((len(call.received), e)))
    activity = await next_event(ai, E.VoiceActivity)
    assert E.TurnLatency == VoiceAIEvents.TurnLatency
    await fake.wait_connected()
    answer = tone(24000, 200)
    got = 0

    async def answered(audio: bytes) -> None:
        nonlocal got
        got += len(audio)
        await call.wait_received(got)

    # a greeting asked for with clientContent: no user speech, no turn
    assert await ai.send_client_content("Greet the caller.")
    await fake.play_audio(answer)
    await answered(answer)
    assert turns == [] and session.record.voice_ai_turns == []

    # 1. ACTIVITY_START, the transcription, ACTIVITY_END, then the model turn
    before = got
    await fake.user_turn("What time is it?", answer)
    await answered(answer)
    assert (await asyncio.wait_for(activity, 5)).data == {
        "voiceActivity": {"voiceActivityType": "ACTIVITY_START"}}
    [(had, ev)] = turns
    assert had == before and ev.turn == 1 and ev.vendor == "gemini" and ev.client is ai
    assert ev.speech_end_to_audio_ms is not None and ev.speech_end_to_audio_ms >= 0
    assert (ev.stt_ms, ev.llm_first_token_ms, ev.tts_first_byte_ms) == (None, None, None)
    assert session.record.voice_ai_turns == [
        {"vendor": "gemini", "turn": 1, "speech_end_to_audio_ms": ev.speech_end_to_audio_ms,
         "stt_ms": None, "llm_first_token_ms": None, "tts_first_byte_ms": None}]

    # without a voice activity signal nothing tells when the user stopped: no record
    await fake.user_turn("And the date?", answer, voice_activity=False)
    await answered(answer)
    assert len(turns) == 1

    # 2. the user pauses and goes on before the answer: one turn
    await fake.voice_activity("ACTIVITY_START")
    await fake.voice_activity("ACTIVITY_END")
    await fake.voice_activity("ACTIVITY_START")
    await fake.voice_activity("ACTIVITY_END")
    before = got
    await fake.play_audio(answer, finish=False)
    await answered(answer)
    assert [(had, e.turn) for had, e in turns[1:]] == [(before, 2)]

    # noise that does not interrupt: the rest of the playing model turn is no answer
    await fake.voice_activity("ACTIVITY_START")
    await fake.voice_activity("ACTIVITY_END")
    await fake.play_audio(answer)
    await answered(answer)
    assert len(turns) == 2

    # 3. a barge-in: interrupted, the user's speech ends, the new answer is a turn
    await fake.user_turn("Tell me a story")
    await fake.play_audio(answer, finish=False)
    await answered(answer)
    await fake.voice_activity("ACTIVITY_START")
    await fake.interrupted()
    await fake.voice_activity("ACTIVITY_END")
    before = got
    await fake.play_audio(answer)
    await answered(answer)
    assert [(e.turn) for _, e in turns] == [1, 2, 3, 4] and turns[3][0] == before
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1, 2, 3, 4]
    assert session.failures == []
    await ai.close()


async def test_turn_latency_from_our_activity_end(fake: FakeGeminiLiveServer) -> None:
    session = FakeSession()
    with session.current():
        ai = await connect(fake, realtime_input_config={
            "automatic_activity_detection": {"disabled": True}})
    call = CallLike(PCM16_16K)
    call.send_media_to(ai)
    sink = CallLike(PCM16_24K)
    ai.send_media_to(sink)
    turns: list[Event] = []
    ai.add_event_listener(VoiceAIEvents.TurnLatency, turns.append)
    await fake.wait_connected()
    assert await ai.send_activity_start()
    speech = tone(16000, 200)
    for i in range(0, len(speech), 640):
        call.push(speech[i:i + 640])
    assert await ai.send_activity_end()  # written: the user's speech end
    await fake.wait_until(lambda: {"realtimeInput": {"activityEnd": {}}} in fake.received)
    answer = tone(24000, 200)
    await fake.play_audio(answer)
    await sink.wait_received(len(answer))
    [ev] = turns
    assert ev.turn == 1 and ev.speech_end_to_audio_ms >= 0
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1]
    # a second model turn without a new activityEnd is not a user turn
    await fake.play_audio(answer)
    await sink.wait_received(2 * len(answer))
    assert len(turns) == 1
    await ai.close()
