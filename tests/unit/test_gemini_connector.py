"""Gemini Live connector units: capabilities, formats, event and tool-call mapping.

The client runs against a stub ``AsyncSession`` here; the real SDK over the wire is
covered by ``tests/integration/test_gemini_live.py``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.genai import errors, types
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from connectors.base import ConnectorError, VoiceAIEvents
from connectors.gemini import (
    GEMINI_LIVE_CAPABILITIES,
    Gemini,
    LiveAPIClient,
    LiveAPIEvents,
    build_live_config,
    message_events,
    tool_response_body,
)
from connectors.gemini.connect import _describe, _retryable
from connectors.gemini.formats import mime_type, parse_mime_type
from gateway.media.format import (
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    PCMA_8K,
    PCMU_8K,
    AudioFormat,
    AudioFrame,
    Encoding,
)
from gateway.runtime.events import Event
from gateway.runtime.media_unit import MediaUnit
from tests.fakes.fake_session import FakeSession

E = LiveAPIEvents


class StubSession:
    """Records what the connector sends through the SDK session API."""

    def __init__(self) -> None:
        self.setup_complete = types.LiveServerSetupComplete(session_id="sess-1")
        self.session_id = "sess-1"
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        self._gone = asyncio.Event()

    async def receive(self) -> AsyncIterator[types.LiveServerMessage]:
        await self._gone.wait()
        raise _closed_api_error(1000, "")
        yield types.LiveServerMessage()  # pragma: no cover  (makes this a generator)

    async def send_realtime_input(self, **kw: Any) -> None:
        self.sent.append(("realtime_input", kw))

    async def send_tool_response(self, **kw: Any) -> None:
        self.sent.append(("tool_response", kw))

    async def send_client_content(self, **kw: Any) -> None:
        self.sent.append(("client_content", kw))

    async def close(self) -> None:
        self.closed = True
        self._gone.set()


class Sink(MediaUnit):
    def __init__(self, fmt: AudioFormat = PCM16_24K) -> None:
        super().__init__()
        self.input_format = fmt
        self.frames: list[AudioFrame] = []
        self.cleared = 0

    def _on_media(self, frame: AudioFrame) -> None:
        self.frames.append(frame)

    def clear_media_buffer(self) -> None:
        self.cleared += 1


def msg(data: dict[str, Any]) -> types.LiveServerMessage:
    import json

    return types.LiveServerMessage.model_validate_json(json.dumps(data))


def record(client: LiveAPIClient, *names: str) -> list[Event]:
    seen: list[Event] = []
    for name in names:
        client.add_event_listener(name, seen.append)
    return seen


# -- capabilities and formats ----------------------------------------------------------
def test_capabilities_are_pcm16_16k_in_24k_out_without_g711() -> None:
    caps = GEMINI_LIVE_CAPABILITIES
    assert caps.input_formats == (PCM16_16K,)
    assert caps.output_formats == (PCM16_24K,)
    assert caps.pcm_input == PCM16_16K and caps.pcm_output == PCM16_24K
    assert caps.server_vad and caps.barge_in and caps.function_calling and caps.transcripts
    assert not caps.truncation
    assert Gemini.capabilities is caps
    assert not any(f.encoding.is_g711 for f in caps.input_formats + caps.output_formats)


async def test_client_formats_stay_pcm_for_a_g711_call() -> None:
    client = LiveAPIClient(StubSession())
    assert (client.input_format, client.output_format) == (PCM16_16K, PCM16_24K)
    assert client.choose_formats(PCMU_8K) == (PCM16_16K, PCM16_24K)
    assert client.choose_formats(PCMA_8K) == (PCM16_16K, PCM16_24K)
    assert client.choose_formats(PCM16_8K) == (PCM16_16K, PCM16_24K)
    with pytest.raises(ValueError):
        client.set_formats(PCMU_8K)


def test_mime_types() -> None:
    assert mime_type(PCM16_16K) == "audio/pcm;rate=16000"
    assert mime_type(PCM16_24K) == "audio/pcm;rate=24000"
    with pytest.raises(ValueError):
        mime_type(PCMU_8K)
    assert parse_mime_type("audio/pcm;rate=24000") == PCM16_24K
    assert parse_mime_type("audio/pcm; rate=16000") == PCM16_16K
    assert parse_mime_type("audio/pcm") == PCM16_24K
    assert parse_mime_type("audio/L16;rate=8000") == AudioFormat(Encoding.PCM16, 8000)
    assert parse_mime_type("image/png") is None
    assert parse_mime_type("audio/pcm;rate=x") is None
    assert parse_mime_type(None) is None


def test_namespace_is_not_instantiable() -> None:
    with pytest.raises(TypeError):
        Gemini()
    assert Gemini.LiveAPIEvents.ToolCall == VoiceAIEvents.ToolCall
    assert Gemini.LiveAPIEvents.WebSocketClosed == VoiceAIEvents.WebSocketClosed
    for name in ("SetupComplete", "ServerContent", "ToolCallCancellation", "Interrupted",
                 "TurnComplete", "InputTranscription", "OutputTranscription", "GoAway",
                 "Error", "Unknown"):
        assert getattr(Gemini.LiveAPIEvents, name).startswith("Gemini.LiveAPIEvents.")


# -- event mapping ------------------------------------------------------------------------
def test_message_events_mapping() -> None:
    assert message_events({"setupComplete": {}}) == [E.SetupComplete]
    assert message_events({"serverContent": {"modelTurn": {"parts": []}}}) == [E.ServerContent]
    assert message_events({"serverContent": {"interrupted": True}}) == [
        E.ServerContent, E.Interrupted]
    assert message_events({"serverContent": {"generationComplete": True,
                                              "turnComplete": True}}) == [
        E.ServerContent, E.GenerationComplete, E.TurnComplete]
    assert message_events({"serverContent": {"inputTranscription": {"text": "hi"},
                                              "outputTranscription": {"text": "yo"}}}) == [
        E.ServerContent, E.InputTranscription, E.OutputTranscription]
    assert message_events({"toolCall": {"functionCalls": []}}) == [VoiceAIEvents.ToolCall]
    assert message_events({"toolCallCancellation": {"ids": ["a"]}}) == [
        E.ToolCallCancellation]
    assert message_events({"goAway": {"timeLeft": "1s"}}) == [E.GoAway]
    assert message_events({"usageMetadata": {}}) == [E.UsageMetadata]
    assert message_events({"sessionResumptionUpdate": {}}) == [E.SessionResumptionUpdate]
    assert message_events({}) == [E.Unknown]
    assert message_events({"somethingNew": {}}) == [E.Unknown]


async def test_events_carry_vendor_json_and_client() -> None:
    client = LiveAPIClient(StubSession())
    seen = record(client, E.ServerContent, E.TurnComplete, E.GoAway, E.Unknown,
                  E.OutputTranscription)
    client._handle(msg({"serverContent": {"turnComplete": True}}))
    client._handle(msg({"serverContent": {"outputTranscription": {"text": "Hi",
                                                                  "finished": True}}}))
    client._handle(msg({"goAway": {"timeLeft": "3s"}}))
    client._handle(msg({}))
    names = [e.event_name for e in seen]
    assert names == [E.ServerContent, E.TurnComplete, E.ServerContent, E.OutputTranscription,
                     E.GoAway, E.Unknown]
    assert seen[0].data == {"serverContent": {"turnComplete": True}}
    assert all(e.client is client for e in seen)
    assert (seen[3].text, seen[3].finished) == ("Hi", True)
    assert seen[4].time_left == "3s"


async def test_model_audio_is_emitted_at_24k_and_other_rates_converted() -> None:
    client = LiveAPIClient(StubSession())
    sink = Sink()
    client.send_media_to(sink)
    pcm = bytes(range(256)) * 3 + b"\x00\x00"  # 770 bytes, even
    b64 = base64.b64encode(pcm).decode()
    seen = record(client, E.ServerContent)
    client._handle(msg({"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": b64}},
        {"text": "thinking"}]}}}))
    assert [f.data for f in sink.frames] == [pcm]
    assert sink.frames[0].format == PCM16_24K
    # vendor JSON keeps the audio as base64 on the wire key
    part = seen[0].data["serverContent"]["modelTurn"]["parts"][0]
    assert part["inlineData"] == {"mimeType": "audio/pcm;rate=24000", "data": b64}
    sink.frames.clear()
    client._handle(msg({"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": "audio/pcm;rate=16000",
                        "data": base64.b64encode(bytes(640)).decode()}}]}}}))
    total = sum(len(f.data) for f in sink.frames)
    assert all(f.format == PCM16_24K for f in sink.frames)
    assert 800 <= total <= 960  # 20 ms at 24 kHz, minus resampler delay


# -- tool calls ----------------------------------------------------------------------------
async def test_tool_call_maps_to_voice_ai_tool_call_and_result_to_tool_response() -> None:
    session = StubSession()
    client = LiveAPIClient(session)
    calls = record(client, VoiceAIEvents.ToolCall)
    client._handle(msg({"toolCall": {"functionCalls": [
        {"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}},
        {"id": "fc-2", "name": "get_time"}]}}))
    assert [(e.name, e.call_id, e.arguments) for e in calls] == [
        ("get_weather", "fc-1", {"city": "Paris"}), ("get_time", "fc-2", {})]
    assert calls[0].data["toolCall"]["functionCalls"][0]["id"] == "fc-1"
    assert client.pending_tool_calls == {"fc-1": "get_weather", "fc-2": "get_time"}
    client._start()
    try:
        assert await client.send_tool_result("fc-1", {"output": "sunny"}) is True
        assert await client.send_tool_result("fc-2", "12:00") is True
    finally:
        await client.close()
    responses = [kw["function_responses"][0] for kind, kw in session.sent
                 if kind == "tool_response"]
    assert [(r.id, r.name, r.response) for r in responses] == [
        ("fc-1", "get_weather", {"output": "sunny"}), ("fc-2", "get_time", {"output": "12:00"})]
    assert client.pending_tool_calls == {}


def test_tool_response_body() -> None:
    assert tool_response_body({"a": 1}) == {"a": 1}
    assert tool_response_body("ok") == {"output": "ok"}
    assert tool_response_body([1, 2]) == {"output": [1, 2]}


async def test_tool_call_cancellation_drops_pending_names() -> None:
    client = LiveAPIClient(StubSession())
    seen = record(client, E.ToolCallCancellation)
    client._handle(msg({"toolCall": {"functionCalls": [{"id": "a", "name": "x"}]}}))
    client._handle(msg({"toolCallCancellation": {"ids": ["a"]}}))
    assert seen[0].ids == ["a"] and client.pending_tool_calls == {}


# -- barge-in -------------------------------------------------------------------------------
async def test_interrupted_clears_sinks_before_dispatch() -> None:
    client = LiveAPIClient(StubSession())
    sink = Sink()
    client.send_media_to(sink)
    at_dispatch: list[int] = []
    client.add_event_listener(E.Interrupted, lambda ev: at_dispatch.append(sink.cleared))
    client._handle(msg({"serverContent": {"interrupted": True}}))
    assert at_dispatch == [1]


async def test_no_barge_in_leaves_sinks() -> None:
    client = LiveAPIClient(StubSession(), barge_in=False)
    sink = Sink()
    client.send_media_to(sink)
    client._handle(msg({"serverContent": {"interrupted": True}}))
    assert sink.cleared == 0


# -- media in ---------------------------------------------------------------------------------
async def test_media_in_is_queued_and_sent_as_16k_blobs() -> None:
    session = StubSession()
    client = LiveAPIClient(session, max_queued_audio_ms=100)
    for _ in range(10):  # 200 ms with no sender running: never blocks, drops the oldest
        client._on_media(AudioFrame(bytes(640), PCM16_16K))
    assert client.dropped_audio_ms == pytest.approx(100.0)
    client._start()
    fut = client.send_text("hi")
    assert await fut is True
    await client.close()
    blobs = [kw["audio"] for kind, kw in session.sent if "audio" in kw]
    assert blobs and {b.mime_type for b in blobs} == {"audio/pcm;rate=16000"}
    assert sum(len(b.data) for b in blobs) == 5 * 640
    assert session.sent[-1] == ("realtime_input", {"text": "hi"})


async def test_close_dispatches_websocket_closed_once() -> None:
    session = StubSession()
    client = LiveAPIClient(session)
    closed = record(client, VoiceAIEvents.WebSocketClosed)
    client._start()
    await client.close()
    await client.close()
    assert session.closed
    assert [(e.code, e.reason) for e in closed] == [(1000, "closed by client")]


# -- connect helpers ----------------------------------------------------------------------------
def test_build_live_config() -> None:
    cfg = build_live_config(
        "Be brief.", "Puck",
        [{"type": "function", "name": "f", "parameters": {"type": "object"}},
         {"google_search": {}}],
        temperature=0.5)
    assert cfg["response_modalities"] == ["AUDIO"]
    assert cfg["system_instruction"] == "Be brief."
    assert cfg["speech_config"] == {"voice_config": {"prebuilt_voice_config": {
        "voice_name": "Puck"}}}
    assert cfg["tools"] == [{"google_search": {}},
                            {"function_declarations": [
                                {"name": "f", "parameters": {"type": "object"}}]}]
    assert cfg["temperature"] == 0.5
    with pytest.raises(ConnectorError, match="invalid live config"):
        build_live_config(no_such_field=1)


def _closed_api_error(code: int, reason: str) -> errors.APIError:
    try:
        try:
            raise ConnectionClosedError(Close(code, reason), None)
        except ConnectionClosedError:
            errors.APIError.raise_error(code, reason, None)
    except errors.APIError as exc:
        return exc
    raise AssertionError("unreachable")


def test_retry_policy_and_descriptions() -> None:
    bad_key = _closed_api_error(1007, "API key not valid.")
    assert not _retryable(bad_key)
    assert _describe(bad_key) == "WebSocket closed with code 1007: API key not valid."
    assert _retryable(_closed_api_error(1011, "Internal error"))
    assert _retryable(ConnectionRefusedError())
    assert not _retryable(ValueError("bad"))
    unavailable = InvalidStatus(Response(503, "Service Unavailable", None))  # type: ignore[arg-type]
    assert _retryable(unavailable)
    assert _describe(unavailable) == "HTTP 503 on the WebSocket handshake"
    assert not _retryable(InvalidStatus(Response(404, "Not Found", None)))  # type: ignore[arg-type]


# -- per-turn latency -----------------------------------------------------------------------
def _audio_msg() -> types.LiveServerMessage:
    import base64

    return msg({"serverContent": {"modelTurn": {"role": "model", "parts": [
        {"inlineData": {"mimeType": "audio/pcm;rate=24000",
                        "data": base64.b64encode(b"\x01\x00" * 240).decode()}}]}}})


def test_vad_signal_eos_times_the_turn_and_sos_cancels_it() -> None:
    session = FakeSession()
    client = LiveAPIClient(StubSession(), owner=session)
    client.send_media_to(Sink())
    client._handle(msg({"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_EOS"}}))
    client._handle(msg({"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_SOS"}}))
    client._handle(_audio_msg())  # the user went on speaking: no answer to time yet
    client._handle(msg({"serverContent": {"turnComplete": True}}))
    assert session.record.voice_ai_turns == []
    client._handle(msg({"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_EOS"}}))
    client._handle(_audio_msg())
    client._handle(_audio_msg())
    [turn] = session.record.voice_ai_turns
    assert turn["turn"] == 1 and turn["vendor"] == "gemini"
    assert turn["speech_end_to_audio_ms"] >= 0 and turn["stt_ms"] is None


def test_input_transcription_alone_is_no_speech_end() -> None:
    session = FakeSession()
    client = LiveAPIClient(StubSession(), owner=session)
    client._handle(msg({"serverContent": {"inputTranscription": {"text": "hi",
                                                                 "finished": True}}}))
    client._handle(_audio_msg())
    assert session.record.voice_ai_turns == []
