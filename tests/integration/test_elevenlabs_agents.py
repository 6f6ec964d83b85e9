"""The ElevenLabs Agents connector against the local protocol fake.

The fake checks every message it sends with the SDK's own client-side parser and
its strict models, and every message the connector sends (``invalid_received``
must stay empty); the signed-URL request goes through the real ``elevenlabs`` SDK.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import _SDK_CLIENTS as _SDK_CACHE
from connectors.base import ConnectOptions, ConnectorError, VoiceAIEvents
from connectors.elevenlabs import AgentsClient, ElevenLabs
from gateway.media.format import PCM16_16K, PCMA_8K, PCMU_8K
from gateway.media.g711 import alaw_to_ulaw
from gateway.runtime.events import Event
from tests.fakes.fake_call import FakeCall
from tests.fakes.fake_elevenlabs_agents import (
    FakeAgentsServer,
    InvalidMessage,
    validate_server_message,
)
from tests.fakes.fake_session import FakeSession

E = ElevenLabs.AgentsEvents
KEY = "xi-test-secret-0123456789"
AGENT = "agent_test"
FAST = ConnectOptions(retries=0, backoff=0.01, timeout=5.0)


class CallLike(FakeCall):
    """A call stand-in whose clear drops what it received."""

    def clear_media_buffer(self) -> None:
        super().clear_media_buffer()
        self.received.clear()


def ulaw_pattern(ms: int) -> bytes:
    """Every μ-law byte value, in an order no codec round trip would keep."""
    return bytes((i * 7 + 3) % 256 for i in range(8 * ms))


def tone_pcm16k(ms: int, hz: float = 440.0) -> bytes:
    n = 16 * ms
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * hz * i / 16000))
                                   for i in range(n)))


def events_of(client: AgentsClient, *names: str) -> list[Event]:
    got: list[Event] = []
    for name in names:
        client.add_event_listener(name, got.append)
    return got


async def until(cond: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def check_clean(server: FakeAgentsServer) -> None:
    assert server.invalid_received == []
    assert server.invalid_sent == []


@pytest.fixture(autouse=True)
def _fresh_sdk_cache() -> None:
    _SDK_CACHE.clear()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAgentsServer]:
    async with FakeAgentsServer(agent_id=AGENT) as server:
        yield server
        check_clean(server)


@pytest.fixture
async def echo_fake() -> AsyncIterator[FakeAgentsServer]:
    async with FakeAgentsServer(mode="echo", agent_id=AGENT) as server:
        yield server
        check_clean(server)


async def connect(server: FakeAgentsServer, **kw: Any) -> AgentsClient:
    kw.setdefault("connect_options", FAST)
    kw.setdefault("api_key", "")  # public agent: no key, not even from the environment
    return await ElevenLabs.create_agents_client(AGENT, base_url=server.base_url, **kw)


# -- connecting -------------------------------------------------------------------
async def test_public_agent_initiation_and_metadata(fake: FakeAgentsServer) -> None:
    ai = await connect(fake, overrides={"agent": {"first_message": "Hi!", "language": "en"}},
                       dynamic_variables={"caller": "+15551234"}, user_id="u1")
    got = events_of(ai, E.ConversationInitiationMetadata)
    await until(lambda: got)
    assert got[0].data["type"] == "conversation_initiation_metadata" and got[0].client is ai
    assert ai.conversation_id == fake.conversation_id
    [hs] = fake.handshakes
    assert hs["path"] == "/v1/convai/conversation" and hs["query"]["agent_id"] == AGENT
    assert hs["xi_api_key"] is None
    init = fake.initiation
    assert init is not None and fake.received[0] is init
    assert init["conversation_config_override"]["agent"]["first_message"] == "Hi!"
    assert init["dynamic_variables"] == {"caller": "+15551234"}
    assert init["user_id"] == "u1"
    assert ai.input_format == PCMU_8K and ai.output_format == PCMU_8K
    await ai.close()


async def test_private_agent_uses_sdk_signed_url() -> None:
    async with FakeAgentsServer(agent_id=AGENT, api_key=KEY) as server:
        ai = await connect(server, api_key=KEY)
        [rest] = server.rest_requests
        assert rest["status"] == 200 and rest["xi_api_key"] == KEY
        [hs] = server.handshakes
        assert hs["status"] == 101 and hs["query"]["conversation_signature"].startswith("sig_")
        await ai.close()
        check_clean(server)


async def test_private_agent_with_header_key() -> None:
    async with FakeAgentsServer(agent_id=AGENT, api_key=KEY) as server:
        ai = await connect(server, api_key=KEY, use_signed_url=False)
        assert server.rest_requests == []
        assert server.handshakes[0]["xi_api_key"] == KEY
        await ai.close()


@pytest.mark.parametrize("use_signed_url", [True, False])
async def test_auth_refused_is_connector_error_without_retries(use_signed_url: bool) -> None:
    async with FakeAgentsServer(agent_id=AGENT, api_key=KEY, refuse_auth=True) as server:
        opts = ConnectOptions(retries=3, backoff=0.01, timeout=5.0)
        with pytest.raises(ConnectorError) as info:
            await connect(server, api_key="wrong-key", use_signed_url=use_signed_url,
                          connect_options=opts)
        err = info.value
        assert err.vendor == "elevenlabs" and not err.retryable
        assert "401" in str(err) and "wrong-key" not in str(err)
        assert len(server.rest_requests) + len(server.handshakes) == 1  # no retry


async def test_private_agent_without_key_is_refused() -> None:
    async with FakeAgentsServer(agent_id=AGENT, api_key=KEY) as server:
        with pytest.raises(ConnectorError, match="403"):
            await connect(server, connect_options=ConnectOptions(retries=2, backoff=0.01))
        assert len(server.handshakes) == 1


async def test_retries_then_connects() -> None:
    async with FakeAgentsServer(agent_id=AGENT, reject_handshakes=2) as server:
        ai = await connect(server, connect_options=ConnectOptions(retries=2, backoff=0.01))
        assert [h["status"] for h in server.handshakes] == [503, 503, 101]
        await ai.close()


async def test_connection_failure_after_retries() -> None:
    async with FakeAgentsServer(agent_id=AGENT, reject_handshakes=5) as server:
        with pytest.raises(ConnectorError, match="after 2 attempt") as info:
            await connect(server, connect_options=ConnectOptions(retries=1, backoff=0.01))
        assert info.value.retryable
        assert len(server.handshakes) == 2


async def test_server_closes_during_initiation() -> None:
    async with FakeAgentsServer(agent_id=AGENT, close_on_initiation=1008,
                                close_reason="Override for field 'voice_id' is not allowed"
                                ) as server:
        with pytest.raises(ConnectorError, match="voice_id") as info:
            await connect(server, overrides={"tts": {"voice_id": "v"}},
                          connect_options=ConnectOptions(retries=2, backoff=0.01))
        assert not info.value.retryable and len(server.handshakes) == 1


# -- audio --------------------------------------------------------------------------
async def test_ulaw_passthrough_both_ways_bit_exact(echo_fake: FakeAgentsServer) -> None:
    ai = await connect(echo_fake)
    call = CallLike(PCMU_8K)
    call.send_media_to(ai)
    ai.send_media_to(call)
    assert ai.input_format == PCMU_8K and ai.output_format == PCMU_8K
    assert ai._routes[call].passthrough and call._routes[ai].passthrough
    audio = ulaw_pattern(400)
    for i in range(0, len(audio), 160):  # 20 ms frames, as from RTP
        call.push(audio[i:i + 160])
    await echo_fake.wait_audio(len(audio))
    assert bytes(echo_fake.received_audio) == audio
    await call.wait_received(len(audio))
    assert bytes(call.received) == audio
    assert call.hangups == 0
    await ai.close()


async def test_pcm_agent_gets_resampled_audio() -> None:
    async with FakeAgentsServer(mode="echo", agent_id=AGENT, input_format="pcm_16000",
                                output_format="pcm_16000") as server:
        ai = await connect(server)
        assert ai.capabilities.input_formats == (PCM16_16K,)
        call = CallLike(PCMU_8K)
        call.send_media_to(ai)
        ai.send_media_to(call)
        assert ai.input_format == PCM16_16K and ai.output_format == PCM16_16K
        assert not call._routes[ai].passthrough
        for _ in range(10):
            call.push(b"\xff" * 160)
        # 200 ms of PCMU 8 kHz arrive as 200 ms of PCM16 16 kHz (the resampler may
        # hold back a few samples).
        await server.wait_audio(6000)
        assert server.audio_ms_received() <= 200.0
        await call.wait_received(1000)  # echoed back, converted to μ-law
        await ai.close()
        check_clean(server)


async def test_scripted_agent_audio_reaches_sink(fake: FakeAgentsServer) -> None:
    ai = await connect(fake)
    call = CallLike(PCMU_8K)
    ai.send_media_to(call)
    audio_events = events_of(ai, E.Audio)
    await fake.wait_connected()
    audio = ulaw_pattern(300)
    await fake.play_audio(audio, chunk_ms=100)
    await call.wait_received(len(audio))
    assert bytes(call.received) == audio
    await until(lambda: len(audio_events) == 3)
    assert all(e.data["type"] == "audio" and e.client is ai for e in audio_events)
    await ai.close()


async def test_pcma_call_is_transcoded_for_ulaw_agent(echo_fake: FakeAgentsServer) -> None:
    ai = await connect(echo_fake)
    call = CallLike(PCMA_8K)
    call.send_media_to(ai)
    assert ai.input_format == PCMU_8K and not call._routes[ai].passthrough
    call.push(b"\xd5" * 160)
    await echo_fake.wait_audio(160)
    assert bytes(echo_fake.received_audio[:160]) == alaw_to_ulaw(b"\xd5" * 160)
    await ai.close()


# -- ping, tools, transcripts ---------------------------------------------------------
async def test_ping_is_answered_with_pong(fake: FakeAgentsServer) -> None:
    ai = await connect(fake)
    pings = events_of(ai, E.Ping)
    await fake.wait_connected()
    eid = await fake.ping(ping_ms=42)
    pong = await fake.wait_for("pong")
    assert pong == {"type": "pong", "event_id": eid}
    await until(lambda: pings)
    assert pings[0].data["ping_event"]["ping_ms"] == 42
    await ai.close()


async def test_tool_call_round_trip(fake: FakeAgentsServer) -> None:
    ai = await connect(fake)
    vendor = events_of(ai, E.ClientToolCall)

    def on_tool(e: Event) -> None:
        assert e.client is ai and e.data["type"] == "client_tool_call"
        ai.send_tool_result(e.call_id, {"temperature": 21, "city": e.arguments["city"]})

    ai.add_event_listener(VoiceAIEvents.ToolCall, on_tool)
    await fake.wait_connected()
    call_id = await fake.client_tool_call("get_weather", {"city": "Paris"})
    result = await fake.wait_for("client_tool_result")
    assert result["tool_call_id"] == call_id and result["is_error"] is False
    assert result["result"] == '{"temperature": 21, "city": "Paris"}'
    assert vendor and vendor[0].data["client_tool_call"]["tool_name"] == "get_weather"
    assert E.ToolCall == VoiceAIEvents.ToolCall
    ai.send_tool_result("toolu_x", "boom", is_error=True)
    err = await fake.wait_for("client_tool_result", count=2)
    assert err["is_error"] is True and err["result"] == "boom"
    await ai.close()


async def test_transcripts_and_text_messages(fake: FakeAgentsServer) -> None:
    ai = await connect(fake)
    got = events_of(ai, E.UserTranscript, E.AgentResponse, E.VadScore)
    await fake.wait_connected()
    await fake.user_transcript("hello there")
    await fake.agent_response("Hi! How can I help?")
    await fake.vad_score(0.9)
    await until(lambda: len(got) == 3)
    assert got[0].data["user_transcription_event"]["user_transcript"] == "hello there"
    assert got[1].data["agent_response_event"]["agent_response"] == "Hi! How can I help?"
    assert got[2].event_name == E.VadScore
    assert await ai.send_contextual_update("The caller is a VIP.")
    assert await ai.send_user_message("I want to book")
    assert await ai.register_user_activity()
    await fake.wait_for("user_activity")
    types = [m.get("type") for m in fake.received]
    assert types[-3:] == ["contextual_update", "user_message", "user_activity"]
    await ai.close()


# -- barge-in ----------------------------------------------------------------------
async def test_interruption_clears_sink_and_drops_interrupted_audio(
        fake: FakeAgentsServer) -> None:
    ai = await connect(fake)
    call = CallLike(PCMU_8K)
    ai.send_media_to(call)
    seen_at_dispatch: list[int] = []
    ai.add_event_listener(E.Interruption, lambda e: seen_at_dispatch.append(call.cleared))
    await fake.wait_connected()
    turn = await fake.play_audio(ulaw_pattern(200))
    await call.wait_received(1600)
    call.played_ms = 100.0
    await fake.interruption()
    await until(lambda: seen_at_dispatch)
    assert seen_at_dispatch == [1]  # cleared before handlers ran
    # A late chunk of the interrupted turn is dropped; the next turn plays.
    await fake.send_audio(b"\x01" * 160, event_id=turn)
    nxt = ulaw_pattern(100)
    await fake.play_audio(nxt)
    await call.wait_received(len(nxt))
    assert bytes(call.received) == nxt
    assert ai.dropped_audio_events == 1
    await ai.close()


async def test_interruption_without_barge_in_keeps_playout(fake: FakeAgentsServer) -> None:
    ai = await connect(fake, barge_in=False)
    call = CallLike(PCMU_8K)
    ai.send_media_to(call)
    got = events_of(ai, E.Interruption)
    await fake.wait_connected()
    await fake.play_audio(ulaw_pattern(100))
    await fake.interruption()
    await until(lambda: got)
    assert call.cleared == 0
    await ai.close()


# -- failures ----------------------------------------------------------------------
async def test_server_close_dispatches_websocket_closed_once(fake: FakeAgentsServer) -> None:
    closed: list[Event] = []
    ai = await connect(fake, on_websocket_closed=closed.append)
    via_listener = events_of(ai, E.WebSocketClosed)
    call = CallLike(PCMU_8K)
    call.send_media_to(ai)
    ai.send_media_to(call)
    await fake.wait_connected()
    await fake.close_connection(4000, "conversation ended by the agent")
    await until(lambda: via_listener)
    assert via_listener[0].code == 4000
    assert via_listener[0].reason == "conversation ended by the agent"
    assert closed == via_listener
    assert ai.closed and ai.media_sinks == [] and call.media_sinks == []
    await ai.close()
    assert len(via_listener) == 1 and call.hangups == 0
    assert not (await ai.send_contextual_update("late"))
    call.push(b"\xff" * 160)  # the call keeps working with nothing routed


async def test_malformed_json_is_an_error_event_and_skipped(fake: FakeAgentsServer) -> None:
    ai = await connect(fake)
    unknown = events_of(ai, E.Unknown)
    errors = events_of(ai, VoiceAIEvents.Error)
    await fake.wait_connected()
    await fake.send_raw("{not json")
    await fake.send_raw("[1, 2]")
    await fake.send_raw('{"type": "brand_new_event"}')
    eid = await fake.ping()
    pong = await fake.wait_for("pong")
    assert pong["event_id"] == eid and not ai.closed
    assert [e.data["type"] for e in unknown] == ["brand_new_event"]
    assert [e.message for e in errors] == [
        "malformed JSON from elevenlabs: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1): '{not json'",
        "malformed JSON from elevenlabs: not a JSON object: '[1, 2]'",
    ]
    assert errors[0].data == {"raw": "'{not json'"} and errors[0].client is ai
    await ai.close()


async def test_server_error_message_is_an_error_event(fake: FakeAgentsServer) -> None:
    ai = await connect(fake)
    vendor = events_of(ai, E.Error)
    errors = events_of(ai, VoiceAIEvents.Error)
    await fake.wait_connected()
    await fake.send_raw('{"type": "error", "message": "Quota exceeded", "code": 1008}')
    await until(lambda: errors)
    assert errors[0].message == "elevenlabs reported an error: Quota exceeded (code 1008)"
    assert errors[0].data == vendor[0].data and not ai.closed
    await ai.close()


async def test_client_close(fake: FakeAgentsServer) -> None:
    ai = await connect(fake)
    closed = events_of(ai, E.WebSocketClosed)
    await fake.wait_connected()
    await ai.close()
    await ai.close()
    assert [e.code for e in closed] == [1000]
    await fake.wait_until(lambda: bool(fake.closed_by_client))
    assert fake.closed_by_client[0][0] == 1000


# -- the fake itself --------------------------------------------------------------------
def test_fake_refuses_malformed_server_messages() -> None:
    with pytest.raises(InvalidMessage):
        validate_server_message({"type": "audio", "audio_event": {"event_id": 1}})
    with pytest.raises(InvalidMessage):
        validate_server_message({"type": "ping", "ping_event": {"ping_ms": 3}})
    with pytest.raises(InvalidMessage):
        validate_server_message({"type": "conversation_initiation_metadata",
                                 "conversation_initiation_metadata_event": {
                                     "conversation_id": "c", "user_input_audio_format": "alaw",
                                     "agent_output_audio_format": "ulaw_8000"}})
    validate_server_message({"type": "interruption", "interruption_event": {"event_id": 3}})


async def test_sdk_async_conversation_talks_to_the_fake(fake: FakeAgentsServer) -> None:
    """The official SDK's own ``AsyncConversation`` understands the fake."""
    from elevenlabs.client import AsyncElevenLabs
    from elevenlabs.conversational_ai.conversation import (
        AsyncAudioInterface,
        AsyncConversation,
    )

    played: list[bytes] = []
    interrupts: list[int] = []
    sdk_input: list[Any] = []

    class Iface(AsyncAudioInterface):
        async def start(self, input_callback: Any) -> None:
            sdk_input.append(input_callback)

        async def stop(self) -> None:
            pass

        async def output(self, audio: bytes) -> None:
            played.append(audio)

        async def interrupt(self) -> None:
            interrupts.append(1)

    transcripts: list[str] = []

    async def on_transcript(text: str) -> None:
        transcripts.append(text)

    sdk = AsyncElevenLabs(api_key="unused", base_url=fake.base_url)
    conv = AsyncConversation(sdk, AGENT, requires_auth=False, audio_interface=Iface(),
                             callback_user_transcript=on_transcript)
    await conv.start_session()
    await fake.wait_connected()
    await until(lambda: bool(sdk_input))
    await sdk_input[0](b"\xff" * 160)
    await fake.wait_audio(160)
    turn = await fake.play_audio(ulaw_pattern(100))
    await fake.interruption(turn)
    await fake.send_audio(b"\x01" * 80, event_id=turn)  # dropped by the SDK too
    eid = await fake.ping()
    await fake.wait_for("pong")
    await fake.user_transcript("hello")
    await until(lambda: transcripts == ["hello"])
    assert b"".join(played) == ulaw_pattern(100) and interrupts == [1]
    assert fake.pongs[0]["event_id"] == eid
    await conv.end_session()
    await conv.wait_for_session_end()


# -- per-turn latency ----------------------------------------------------------------
async def test_turn_latency_from_user_transcript_to_first_audio(fake: FakeAgentsServer) -> None:
    session = FakeSession()
    with session.current():
        ai = await connect(fake)
    call = FakeCall(PCMU_8K)
    ai.send_media_to(call)
    turns: list[tuple[int, Event]] = []  # (bytes the call had when the event fired, event)
    ai.add_event_listener(VoiceAIEvents.TurnLatency,
                          lambda e: turns.append((len(call.received), e)))
    assert E.TurnLatency == VoiceAIEvents.TurnLatency
    await fake.wait_connected()
    answer = ulaw_pattern(300)

    # the agent's first message (no user transcript before it): no user turn
    first = await fake.play_audio(answer)
    await call.wait_received(len(answer))
    assert turns == [] and session.record.voice_ai_turns == []

    # 1. vad scores, the finalized transcript, then the answer's audio
    await fake.user_turn("Where is my order?", answer, reply="Let me check.")
    await call.wait_received(2 * len(answer))
    [(had, ev)] = turns
    assert had == len(answer)  # timed at the answer's first audio, before it was emitted
    assert ev.turn == 1 and ev.vendor == "elevenlabs" and ev.client is ai
    assert ev.speech_end_to_audio_ms is not None and ev.speech_end_to_audio_ms >= 0
    assert (ev.stt_ms, ev.llm_first_token_ms, ev.tts_first_byte_ms) == (None, None, None)
    assert session.record.voice_ai_turns == [
        {"vendor": "elevenlabs", "turn": 1, "speech_end_to_audio_ms": ev.speech_end_to_audio_ms,
         "stt_ms": None, "llm_first_token_ms": None, "tts_first_byte_ms": None}]

    # 2. a late chunk of an earlier answer after the transcript does not answer it
    await fake.user_turn("And the invoice?")
    await fake.send_audio(b"\x01" * 160, event_id=first)
    await call.wait_received(2 * len(answer) + 160)
    assert len(turns) == 1
    await fake.play_audio(answer)
    await call.wait_received(3 * len(answer) + 160)
    assert [e.turn for _, e in turns] == [1, 2] and turns[1][0] == 2 * len(answer) + 160

    # 3. a barge-in'd answer was reported at its first audio; the interruption is no turn
    await fake.user_turn("Tell me everything", answer)
    await call.wait_received(4 * len(answer) + 160)
    await fake.interruption()
    await until(lambda: call.cleared == 1)
    await fake.user_turn("Stop, please", answer)
    await call.wait_received(5 * len(answer) + 160)
    # a transcript that gets no answer reports nothing
    await fake.user_turn("Hm.")
    await fake.ping()
    await fake.wait_for("pong")
    assert [e.turn for _, e in turns] == [1, 2, 3, 4]
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1, 2, 3, 4]
    assert all(t["speech_end_to_audio_ms"] >= 0 for t in session.record.voice_ai_turns)
    assert session.failures == []
    await ai.close()
