"""The real ``deepgram-sdk`` agent socket against the local Voice Agent fake.

Every JSON message the fake sends is validated against the SDK's server types,
and every message the connector sends (Settings included) against the SDK's
client types (``fake.invalid_received`` must stay empty).
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ConnectOptions, ConnectorError, VoiceAIEvents
from connectors.deepgram import Deepgram, VoiceAgentClient
from gateway.media.format import PCM16_16K, PCM16_24K, PCMA_8K, PCMU_8K
from gateway.runtime.events import Event
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_deepgram_agent import FakeVoiceAgentServer
from tests.fakes.fake_session import FakeSession

E = Deepgram.VoiceAgentEvents
KEY = "dg-test-secret-0123456789"
FAST = ConnectOptions(retries=0, backoff=0.01, timeout=5.0)
FUNCS = [{"name": "lookup", "description": "Look an order up",
          "parameters": {"type": "object", "properties": {"order": {"type": "string"}}}}]


CallLike = FakeCall


def ulaw_pattern(ms: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(8 * ms))


def tone(rate: int, ms: int, hz: float = 440.0) -> bytes:
    n = rate * ms // 1000
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * hz * i / rate))
                                   for i in range(n)))


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(client: VoiceAgentClient, *names: str) -> list[Event]:
    seen: list[Event] = []
    for name in names:
        client.add_event_listener(name, seen.append)
    return seen


async def until(cond: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


@pytest.fixture
async def fake() -> AsyncIterator[FakeVoiceAgentServer]:
    async with FakeVoiceAgentServer(api_key=KEY) as server:
        yield server
        assert server.invalid_received == []
        assert server.invalid_sent == []
        assert server.audio_before_settings == 0


@pytest.fixture
async def echo_fake() -> AsyncIterator[FakeVoiceAgentServer]:
    async with FakeVoiceAgentServer(mode="echo", api_key=KEY) as server:
        yield server
        assert server.invalid_received == []
        assert server.invalid_sent == []
        assert server.audio_before_settings == 0


async def connect(fake: FakeVoiceAgentServer, **kw: Any) -> VoiceAgentClient:
    kw.setdefault("connect_options", FAST)
    return await Deepgram.create_voice_agent_client(api_key=KEY, base_url=fake.url, **kw)


async def test_handshake_welcome_settings_applied_in_order(fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake, instructions="Be brief.", functions=FUNCS,
                           greeting="Hello!")
    seen = record(client, E.Welcome, E.SettingsApplied)
    call = CallLike(PCMU_8K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert await client.wait_settings_applied(5.0)
    await until(lambda: len(seen) == 2)
    assert [e.event_name for e in seen] == [E.Welcome, E.SettingsApplied]
    assert seen[0].data["type"] == "Welcome" and seen[0].data["request_id"]
    assert seen[0].client is client and seen[0].message is not None
    # server: Welcome first, then SettingsApplied; client: Settings first.
    assert [m["type"] for m in fake.sent[:2]] == ["Welcome", "SettingsApplied"]
    assert fake.received_messages[0]["type"] == "Settings"
    s = fake.settings
    assert s is not None and fake.settings_model is not None  # SDK-validated
    assert s["agent"]["think"]["prompt"] == "Be brief."
    assert s["agent"]["think"]["functions"][0]["name"] == "lookup"
    assert s["agent"]["greeting"] == "Hello!"
    assert fake.handshakes[0]["path"] == "/v1/agent/converse"
    assert fake.handshakes[0]["authorization"] == f"Token {KEY}"
    await client.close()


async def test_pcmu_call_is_passed_through_bit_exact(echo_fake: FakeVoiceAgentServer) -> None:
    client = await connect(echo_fake)
    call = CallLike(PCMU_8K)
    # The normal scenario flow: VoxEngine.send_media_between(call, ai).
    call.send_media_to(client)
    client.send_media_to(call)
    assert client.input_format == PCMU_8K and client.output_format == PCMU_8K
    assert await client.wait_settings_applied(5.0)
    audio = echo_fake.settings["audio"]  # type: ignore[index]
    assert audio["input"] == {"encoding": "mulaw", "sample_rate": 8000}
    assert audio["output"] == {"encoding": "mulaw", "sample_rate": 8000, "container": "none"}
    sent = ulaw_pattern(400)
    for i in range(0, len(sent), 160):
        call.push(sent[i:i + 160])
    await call.wait_received(len(sent))
    assert bytes(echo_fake.received_audio) == sent
    assert bytes(call.received) == sent
    await client.close()


async def test_pcma_call_is_passed_through_too(echo_fake: FakeVoiceAgentServer) -> None:
    client = await connect(echo_fake)
    call = CallLike(PCMA_8K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert await client.wait_settings_applied(5.0)
    assert echo_fake.settings["audio"]["input"]["encoding"] == "alaw"  # type: ignore[index]
    sent = bytes(range(256)) * 5
    for i in range(0, len(sent), 160):
        call.push(sent[i:i + 160])
    await call.wait_received(len(sent))
    assert bytes(call.received) == sent
    await client.close()


async def test_pcm_source_gets_linear16(echo_fake: FakeVoiceAgentServer) -> None:
    client = await connect(echo_fake)
    call = CallLike(PCM16_16K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert (client.input_format, client.output_format) == (PCM16_16K, PCM16_24K)
    assert await client.wait_settings_applied(5.0)
    audio = echo_fake.settings["audio"]  # type: ignore[index]
    assert audio["input"] == {"encoding": "linear16", "sample_rate": 16000}
    assert audio["output"] == {"encoding": "linear16", "sample_rate": 24000,
                               "container": "none"}
    pcm = tone(16000, 200)
    for i in range(0, len(pcm), 640):
        call.push(pcm[i:i + 640])
    await echo_fake.wait_for(lambda: len(echo_fake.received_audio) >= len(pcm))
    assert bytes(echo_fake.received_audio) == pcm  # 16k in needs no resample
    await call.wait_received(len(pcm) * 9 // 10)  # 24k out, resampled back to 16k
    await client.close()


async def test_no_source_sends_pcm_settings_after_the_delay(fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake, settings_delay=0.05)
    assert await client.wait_settings_applied(5.0)
    assert fake.settings["audio"]["input"]["encoding"] == "linear16"  # type: ignore[index]
    # Formats are pinned once Settings went out: a later PCMU source is converted.
    call = CallLike(PCMU_8K)
    call.send_media_to(client)
    assert client.input_format == PCM16_16K
    await client.close()


async def test_explicit_audio_format_applies_settings_during_connect(
        fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake, audio_format=PCMU_8K)
    assert client.settings_applied.is_set()
    assert fake.settings["audio"]["output"]["encoding"] == "mulaw"  # type: ignore[index]
    seen = record(client, E.Welcome, E.SettingsApplied)
    await until(lambda: len(seen) == 2)
    await client.close()


async def test_settings_refused_raises_connector_error() -> None:
    async with FakeVoiceAgentServer(api_key=KEY, refuse_settings="INVALID_SETTINGS") as fake:
        with pytest.raises(ConnectorError, match="INVALID_SETTINGS"):
            await connect(fake, audio_format=PCM16_16K)


async def test_tool_call_round_trip(fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake, functions=FUNCS)
    call = CallLike(PCMU_8K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert await client.wait_settings_applied(5.0)
    calls: list[Event] = []
    requests = record(client, E.FunctionCallRequest)

    def on_tool(e: Event) -> None:
        calls.append(e)
        client.send_tool_result(e.call_id, {"status": "shipped"})

    client.add_event_listener(VoiceAIEvents.ToolCall, on_tool)
    call_id = await fake.function_call_request("lookup", {"order": "42"})
    await fake.function_call_request("server_fn", {}, client_side=False)
    await fake.wait_for(lambda: len(fake.function_responses) == 1)
    assert len(calls) == 1
    assert calls[0].name == "lookup" and calls[0].call_id == call_id
    assert calls[0].arguments == {"order": "42"}
    assert calls[0].data["type"] == "FunctionCallRequest"
    assert len(requests) == 2  # the raw vendor event fires for both
    assert fake.function_responses == [{"type": "FunctionCallResponse", "id": call_id,
                                        "name": "lookup", "content": '{"status": "shipped"}'}]
    await client.close()


async def test_user_started_speaking_clears_the_sink(fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake)
    call = CallLike(PCMU_8K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert await client.wait_settings_applied(5.0)
    order: list[str] = []
    client.add_event_listener(E.UserStartedSpeaking,
                              lambda e: order.append(f"event cleared={call.cleared}"))
    await fake.play_audio(ulaw_pattern(200))
    await call.wait_received(1600)
    assert bytes(call.received) == ulaw_pattern(200)
    await fake.user_started_speaking()
    await until(lambda: order)
    assert call.cleared == 1
    assert order == ["event cleared=1"]  # cleared before scenario handlers ran
    await client.close()


async def test_barge_in_off_leaves_playout_alone(fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake, barge_in=False)
    call = CallLike(PCMU_8K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert await client.wait_settings_applied(5.0)
    seen = record(client, E.UserStartedSpeaking)
    await fake.user_started_speaking()
    await until(lambda: seen)
    assert call.cleared == 0
    await client.close()


async def test_connection_refused_is_a_connector_error() -> None:
    port = free_tcp_port()
    with pytest.raises(ConnectorError, match="could not connect after 2 attempt"):
        await Deepgram.create_voice_agent_client(
            api_key=KEY, base_url=f"ws://127.0.0.1:{port}",
            connect_options=ConnectOptions(retries=1, backoff=0.01, timeout=5.0))


async def test_bad_key_is_not_retried_and_not_leaked() -> None:
    async with FakeVoiceAgentServer(api_key=KEY) as fake:
        with pytest.raises(ConnectorError) as info:
            await Deepgram.create_voice_agent_client(
                api_key="wrong-key-abcdef", base_url=fake.url,
                connect_options=ConnectOptions(retries=3, backoff=0.01, timeout=5.0))
        assert "HTTP 401 on the WebSocket handshake (authentication refused)" in str(info.value)
        assert "wrong-key-abcdef" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__
        assert len(fake.handshakes) == 1


async def test_503_is_retried() -> None:
    async with FakeVoiceAgentServer(api_key=KEY, reject_handshakes=1) as fake:
        client = await connect(fake, connect_options=ConnectOptions(
            retries=2, backoff=0.01, timeout=5.0))
        assert [h["status"] for h in fake.handshakes] == [503, 101]
        await client.close()


async def test_no_api_key_is_a_connector_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(ConnectorError, match="DEEPGRAM_API_KEY"):
        await Deepgram.create_voice_agent_client(base_url="ws://127.0.0.1:9")


async def test_api_key_from_environment(fake: FakeVoiceAgentServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", KEY)
    client = await Deepgram.create_voice_agent_client(base_url=fake.url,
                                                      connect_options=FAST)
    assert fake.handshakes[-1]["authorization"] == f"Token {KEY}"
    await client.close()


async def test_server_close_dispatches_websocket_closed_once(
        fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake)
    call = CallLike(PCMU_8K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert await client.wait_settings_applied(5.0)
    closed = record(client, E.WebSocketClosed)
    errors = record(client, E.Error)
    generic = record(client, VoiceAIEvents.Error)
    await fake.error("The think provider failed", "FAILED_TO_THINK")
    await fake.close(1011, "internal error")
    await until(lambda: closed)
    await client.close()
    assert len(closed) == 1
    assert (closed[0].code, closed[0].reason) == (1011, "internal error")
    assert errors[0].data == {"type": "Error", "description": "The think provider failed",
                              "code": "FAILED_TO_THINK"}
    assert [e.message for e in generic] == [
        "deepgram reported an error (FAILED_TO_THINK): The think provider failed"]
    assert generic[0].data == errors[0].data
    assert client.closed and call.hangups == 0
    assert client.media_sinks == [] and call.media_source is None


async def test_client_close_dispatches_once(fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake)
    closed = record(client, E.WebSocketClosed)
    await client.close()
    await client.close()
    assert len(closed) == 1 and closed[0].code == 1000
    await fake.wait_for(lambda: fake.closed_by_client is not None)


async def test_malformed_json_is_an_error_event_and_skipped(
        fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake, settings_delay=0.0)
    assert await client.wait_settings_applied(5.0)
    seen = record(client, E.ConversationText)
    errors = record(client, VoiceAIEvents.Error)
    await fake.send_raw("{not json")
    await fake.send_raw("[1, 2]")  # the SDK hands a non-object back as is
    await fake.send_raw("null")
    await fake.conversation_text("user", "hello")
    await until(lambda: seen)
    assert seen[0].data["content"] == "hello" and not client.closed
    assert [e.message for e in errors] == [
        "malformed JSON from deepgram: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1): '{not json'",
        "malformed JSON from deepgram: not a JSON object: '[1, 2]'",
        "malformed JSON from deepgram: not a JSON object: 'null'",
    ]
    await client.close()


async def test_requests_round_trip(fake: FakeVoiceAgentServer) -> None:
    client = await connect(fake, settings_delay=0.0)
    assert await client.wait_settings_applied(5.0)
    seen = record(client, E.PromptUpdated, E.SpeakUpdated)
    assert await client.update_prompt("Be terse.")
    assert await client.update_speak({"provider": {"type": "deepgram",
                                                   "model": "aura-2-apollo-en"}})
    assert await client.keep_alive()
    await until(lambda: len(seen) == 2)
    assert [m["type"] for m in fake.received_messages] == [
        "Settings", "UpdatePrompt", "UpdateSpeak", "KeepAlive"]
    await client.close()


# -- per-turn latency ----------------------------------------------------------------
async def test_turn_latency_maps_deepgram_figures_into_the_cdr(
        fake: FakeVoiceAgentServer) -> None:
    session = FakeSession()
    with session.current():
        client = await connect(fake, greeting="Hello!")
    call = CallLike(PCMU_8K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert await client.wait_settings_applied(5.0)
    turns = record(client, VoiceAIEvents.TurnLatency)
    reports = record(client, E.LatencyReport)
    assert E.TurnLatency == VoiceAIEvents.TurnLatency

    # the greeting: AgentStartedSpeaking without user speech is no user turn
    await fake.play_audio(ulaw_pattern(100), total_latency=0.0, tts_latency=0.0,
                          ttt_latency=0.0)
    await call.wait_received(800)
    assert turns == [] and session.record.voice_ai_turns == []

    # 1. the order Deepgram sends a turn in; LatencyReport after the answer
    await fake.user_started_speaking()
    await fake.conversation_text("user", "Where is my order?")
    await fake.agent_thinking()
    await fake.conversation_text("assistant", "Let me check.")
    await fake.play_audio(ulaw_pattern(100), total_latency=1.25, tts_latency=0.3,
                          ttt_latency=0.7)
    await fake.latency_report(stt_latency=0.12, ttt_token_latency=0.65,
                              ttt_text_latency=0.7, tts_latency=0.3, total_latency=1.25)
    await until(lambda: reports)
    [ev] = turns
    assert (ev.turn, ev.vendor, ev.client) == (1, "deepgram", client)
    assert ev.speech_end_to_audio_ms == 1250.0  # total_latency
    assert ev.llm_first_token_ms == 700.0  # ttt_latency
    assert ev.tts_first_byte_ms == 300.0  # tts_latency
    assert ev.stt_ms is None  # LatencyReport came later: it completes the CDR record
    assert session.record.voice_ai_turns == [
        {"vendor": "deepgram", "turn": 1, "speech_end_to_audio_ms": 1250.0, "stt_ms": 120.0,
         "llm_first_token_ms": 700.0, "tts_first_byte_ms": 300.0}]

    # 2. a LatencyReport before AgentStartedSpeaking goes into the event itself
    await fake.user_started_speaking()
    await fake.conversation_text("user", "And the invoice?")
    await fake.latency_report(stt_latency=0.08)
    await fake.play_audio(ulaw_pattern(100), total_latency=0.9, tts_latency=0.25,
                          ttt_latency=0.5, done=False)
    await until(lambda: len(turns) == 2)
    assert (turns[1].turn, turns[1].stt_ms, turns[1].speech_end_to_audio_ms,
            turns[1].llm_first_token_ms, turns[1].tts_first_byte_ms) == (
        2, 80.0, 900.0, 500.0, 250.0)

    # 3. the user barges in: the cut answer was reported; the next answer is turn 3
    cleared = call.cleared
    await fake.user_started_speaking()
    await until(lambda: call.cleared == cleared + 1)
    assert len(turns) == 2
    await fake.conversation_text("user", "Sorry, one more thing.")
    await fake.play_audio(ulaw_pattern(100), total_latency=1.0, tts_latency=0.2,
                          ttt_latency=0.6)
    await until(lambda: len(turns) == 3)
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1, 2, 3]
    assert session.record.voice_ai_turns[2]["speech_end_to_audio_ms"] == 1000.0
    assert session.failures == []
    await client.close()
