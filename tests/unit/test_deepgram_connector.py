"""Unit tests of the Deepgram Voice Agent connector (no network: a memory socket)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connectors.base import VoiceAIEvents
from connectors.deepgram import DEEPGRAM_AGENT_CAPABILITIES, Deepgram, VoiceAgentClient
from connectors.deepgram.connect import _describe, _retryable, agent_base_url
from connectors.deepgram.events import SERVER_EVENT_MAP, VoiceAgentEvents, event_name
from connectors.deepgram.settings import (
    build_settings,
    from_deepgram_audio,
    to_deepgram_audio,
    validate_settings,
)
from gateway.media.format import (
    PCM16_16K,
    PCM16_24K,
    PCMA_8K,
    PCMU_8K,
    AudioFormat,
    AudioFrame,
    Encoding,
)
from gateway.runtime.media_unit import MediaUnit
from tests.fakes.fake_deepgram_agent import SERVER_TYPES, validate_client_message
from tests.fakes.fake_session import FakeSession

E = VoiceAgentEvents


class MemorySocket:
    """The parts of the SDK's AsyncV1SocketClient the connector uses."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()

    async def recv(self) -> Any:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def send_media(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    async def _model(self, model: Any) -> None:
        self.sent.append(model.dict())

    send_settings = send_function_call_response = send_update_prompt = _model
    send_update_speak = send_inject_agent_message = send_inject_user_message = _model

    async def send_keep_alive(self, model: Any = None) -> None:
        self.sent.append({"type": "KeepAlive"})

    async def send_raw(self, message: Any) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        from websockets.exceptions import ConnectionClosedOK
        from websockets.frames import Close

        await self.inbox.put(ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True))

    def json_sent(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if isinstance(m, dict)]


class Source(MediaUnit):
    def __init__(self, fmt: AudioFormat) -> None:
        super().__init__()
        self.output_format = fmt
        self.input_format = fmt
        self.received = bytearray()
        self.cleared = 0
        self.played_ms = 0.0
        self.queued_ms = 0.0

    def push(self, data: bytes) -> None:
        self._emit(AudioFrame(data, self.output_format))

    def _on_media(self, frame: AudioFrame) -> None:
        self.received += frame.data

    def clear_media_buffer(self) -> None:
        self.cleared += 1


def make_client(**kw: Any) -> tuple[VoiceAgentClient, MemorySocket]:
    sock = MemorySocket()
    kw.setdefault("settings_delay", 60.0)
    client = VoiceAgentClient(sock, closer=sock.close, settings_args={"instructions": "hi"},
                              **kw)
    client._start([])
    return client, sock


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_every_sdk_server_type_has_a_constant() -> None:
    assert set(SERVER_TYPES) == set(SERVER_EVENT_MAP)
    assert event_name("Bogus") == E.Unknown and event_name(None) == E.Unknown
    assert E.ToolCall == VoiceAIEvents.ToolCall
    assert E.WebSocketClosed == VoiceAIEvents.WebSocketClosed
    names = [v for k, v in vars(E).items() if not k.startswith("_")]
    assert len(names) == len(set(names))


def test_namespace() -> None:
    with pytest.raises(TypeError):
        Deepgram()
    assert Deepgram.VoiceAgentEvents is VoiceAgentEvents


@pytest.mark.parametrize(("fmt", "obj"), [
    (PCMU_8K, {"encoding": "mulaw", "sample_rate": 8000}),
    (PCMA_8K, {"encoding": "alaw", "sample_rate": 8000}),
    (PCM16_16K, {"encoding": "linear16", "sample_rate": 16000}),
])
def test_audio_objects_round_trip(fmt: AudioFormat, obj: dict[str, Any]) -> None:
    assert to_deepgram_audio(fmt) == obj
    assert to_deepgram_audio(fmt, output=True) == {**obj, "container": "none"}
    assert from_deepgram_audio(obj) == fmt


def test_unsupported_format_is_refused() -> None:
    with pytest.raises(ValueError):
        to_deepgram_audio(AudioFormat(Encoding.PCM16, 11025))


def test_capabilities_pick_passthrough_or_pcm() -> None:
    caps = DEEPGRAM_AGENT_CAPABILITIES
    assert caps.pcm_input == PCM16_16K and caps.pcm_output == PCM16_24K
    assert caps.function_calling and caps.barge_in and caps.server_vad


def test_settings_validate_against_the_sdk_type() -> None:
    body = build_settings(PCMU_8K, PCMU_8K, instructions="Be brief.", greeting="Hi",
                          functions=[{"type": "function", "name": "f",
                                      "parameters": {"type": "object"}}])
    validate_settings(body)
    validate_client_message(body)  # no key the SDK type lacks
    assert body["agent"]["think"]["prompt"] == "Be brief."
    assert body["agent"]["think"]["functions"] == [{"name": "f",
                                                   "parameters": {"type": "object"}}]
    assert body["agent"]["listen"]["provider"]["type"] == "deepgram"


def test_settings_audio_follows_the_call() -> None:
    body = build_settings(PCM16_16K, PCM16_24K, settings={
        "audio": {"input": {"encoding": "mulaw", "sample_rate": 8000}},
        "agent": {"think": [{"provider": {"type": "open_ai", "model": "a"}},
                            {"provider": {"type": "open_ai", "model": "b"}}]}},
        instructions="x")
    assert body["audio"]["input"] == {"encoding": "linear16", "sample_rate": 16000}
    assert [t["prompt"] for t in body["agent"]["think"]] == ["x", "x"]
    validate_settings(body)


def test_invalid_settings_raise_value_error() -> None:
    with pytest.raises(ValueError, match="invalid Settings"):
        validate_settings(build_settings(PCMU_8K, PCMU_8K, think={"provider": 5}))


def test_agent_url_normalisation() -> None:
    assert agent_base_url("http://h:1/") == "ws://h:1"
    assert agent_base_url("wss://x/v1/agent/converse") == "wss://x"
    assert agent_base_url(None).startswith("wss://")


def test_retry_policy_and_description_hide_headers() -> None:
    from connectors.deepgram._sdk import ApiError

    denied = ApiError(status_code=401, headers={"Authorization": "Token secret"}, body="no")
    assert not _retryable(denied) and "secret" not in _describe(denied)
    assert _retryable(ApiError(status_code=503, headers={}, body=""))
    assert _retryable(ConnectionRefusedError())


async def test_pcmu_source_sends_mulaw_settings_before_any_audio() -> None:
    client, sock = make_client()
    call = Source(PCMU_8K)
    call.send_media_to(client)
    call.push(b"\x55" * 160)
    await settle()
    assert sock.json_sent()[0]["audio"]["input"] == {"encoding": "mulaw", "sample_rate": 8000}
    assert not any(isinstance(m, bytes) for m in sock.sent)  # held until SettingsApplied
    await sock.inbox.put({"type": "SettingsApplied"})
    await settle()
    assert sock.sent[-1] == b"\x55" * 160
    await client.close()


async def test_formats_are_pinned_after_settings() -> None:
    client, _ = make_client()
    Source(PCM16_16K).send_media_to(client)
    Source(PCMU_8K).send_media_to(client)
    assert client.input_format == PCM16_16K
    await client.close()


async def test_on_media_never_blocks_and_bounds_the_queue() -> None:
    client, _ = make_client(max_queued_audio_ms=100)
    call = Source(PCMU_8K)
    call.send_media_to(client)
    for _ in range(50):
        call.push(b"\x00" * 160)
    assert client._audio_entries <= 5
    assert client.dropped_audio_ms > 0
    await client.close()


async def test_function_call_request_dispatches_tool_call_and_answers() -> None:
    client, sock = make_client(audio_format=(PCMU_8K, PCMU_8K))
    calls: list[Any] = []
    client.add_event_listener(VoiceAIEvents.ToolCall, calls.append)
    await sock.inbox.put({"type": "FunctionCallRequest", "functions": [
        {"id": "c1", "name": "lookup", "arguments": '{"a": 1}', "client_side": True},
        {"id": "c2", "name": "srv", "arguments": "{}", "client_side": False}]})
    await settle()
    assert [(c.name, c.call_id, c.arguments) for c in calls] == [("lookup", "c1", {"a": 1})]
    assert calls[0].client is client and calls[0].data["type"] == "FunctionCallRequest"
    assert await client.send_tool_result("c1", "done")
    assert sock.json_sent()[-1] == {"type": "FunctionCallResponse", "id": "c1",
                                    "name": "lookup", "content": "done"}
    await client.close()


async def test_user_started_speaking_clears_sinks_before_handlers() -> None:
    client, sock = make_client(audio_format=(PCMU_8K, PCMU_8K))
    sink = Source(PCMU_8K)
    client.send_media_to(sink)
    seen: list[int] = []
    client.add_event_listener(E.UserStartedSpeaking, lambda e: seen.append(sink.cleared))
    await sock.inbox.put(b"\x01" * 160)
    await sock.inbox.put({"type": "UserStartedSpeaking"})
    await settle()
    assert bytes(sink.received) == b"\x01" * 160
    assert seen == [1]
    await client.close()


async def test_pcm_output_keeps_sample_alignment() -> None:
    client, sock = make_client(audio_format=(PCM16_16K, PCM16_24K))
    sink = Source(PCM16_24K)
    client.send_media_to(sink)
    await sock.inbox.put(b"\x01\x02\x03")
    await sock.inbox.put(b"\x04")
    await settle()
    assert bytes(sink.received) == b"\x01\x02\x03\x04"
    await client.close()


async def test_keepalive_when_idle() -> None:
    client, sock = make_client(audio_format=(PCMU_8K, PCMU_8K), keepalive_interval=0.01)
    async with asyncio.timeout(5):
        while {"type": "KeepAlive"} not in sock.sent:
            await asyncio.sleep(0.005)
    await client.close()


async def test_unknown_message_is_dispatched_as_unknown() -> None:
    client, sock = make_client()
    seen: list[Any] = []
    client.add_event_listener(E.Unknown, seen.append)
    await sock.inbox.put({"type": "SomethingNew", "x": 1})
    await settle()
    assert seen[0].data == {"type": "SomethingNew", "x": 1} and seen[0].message is None
    await client.close()


async def test_reader_failure_dispatches_websocket_closed_once() -> None:
    client, sock = make_client()
    closed: list[Any] = []
    client.add_event_listener(E.WebSocketClosed, closed.append)
    await sock.inbox.put(RuntimeError("boom"))
    await settle()
    await client.close()
    assert len(closed) == 1 and closed[0].code == 1006


async def test_send_message_validates_known_types() -> None:
    client, _ = make_client()
    with pytest.raises(ValueError, match="UpdatePrompt"):
        client.send_message({"type": "UpdatePrompt"})
    await client.close()
    assert await client.update_prompt("x") is False


async def test_repr_and_close_code() -> None:
    client, _ = make_client()
    assert "Deepgram VoiceAgentClient open" in repr(client)
    await client.close()
    assert client.close_code == 1000 and "closed" in repr(client)


# -- per-turn latency ----------------------------------------------------------------
async def test_turn_latency_needs_user_speech_and_ignores_non_numbers() -> None:
    session = FakeSession()
    client, _ = make_client(owner=session)
    started = {"type": "AgentStartedSpeaking", "total_latency": 0.5, "tts_latency": 0.1,
               "ttt_latency": 0.3}
    client._handle(started)  # greeting / InjectAgentMessage: no user turn
    client._handle({"type": "LatencyReport", "stt_latency": 0.05})  # not for a user turn
    assert session.record.voice_ai_turns == []
    client._handle({"type": "UserStartedSpeaking"})
    client._handle({**started, "tts_latency": None})
    client._handle(started)  # a further answer without new user speech
    assert session.record.voice_ai_turns == [
        {"vendor": "deepgram", "turn": 1, "speech_end_to_audio_ms": 500.0, "stt_ms": None,
         "llm_first_token_ms": 300.0, "tts_first_byte_ms": None}]
    client._handle({"type": "LatencyReport", "stt_latency": 0.05})
    client._handle({"type": "LatencyReport", "stt_latency": 0.07})  # only the first fills
    assert session.record.voice_ai_turns[0]["stt_ms"] == 50.0
    await client.close()
