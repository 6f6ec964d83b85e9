"""Unit tests of the OpenAI Realtime (GA) connector without sockets.

Covers the GA server event -> ``RealtimeAPIEvents`` mapping, the format choice
(PCMU source -> ``audio/pcmu`` session.update, PCM otherwise), the send queue,
and the barge-in arithmetic (truncate at the position the sink played).
"""

from __future__ import annotations

import asyncio
import base64
import json
import typing
from typing import Any, ClassVar

import pytest
from openai.types.realtime import RealtimeServerEvent

from connectors.base import (
    Capabilities,
    ConnectOptions,
    ConnectorError,
    VoiceAIClient,
    VoiceAIEvents,
    connect_with_retries,
)
from connectors.openai import OpenAI, RealtimeAPIClient, RealtimeAPIEvents, event_name
from connectors.openai.formats import from_openai_format, to_openai_format
from gateway.errors import GatewayError
from gateway.media.format import (
    PCM16_16K,
    PCM16_24K,
    PCMA_8K,
    PCMU_8K,
    AudioFormat,
    AudioFrame,
)
from gateway.runtime.context import current_session
from gateway.runtime.media_unit import MediaUnit
from tests.fakes.fake_session import FakeSession


# -- doubles -----------------------------------------------------------------------
class MemoryConnection:
    """Stands in for the SDK's AsyncRealtimeConnection: records what is sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.incoming: asyncio.Queue[bytes | BaseException] = asyncio.Queue()

    async def send_raw(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def recv_bytes(self) -> bytes:
        item = await self.incoming.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        from websockets.exceptions import ConnectionClosedOK
        from websockets.frames import Close

        self.incoming.put_nowait(
            ConnectionClosedOK(Close(code, reason), Close(code, reason), True))


class Source(MediaUnit):
    """A call-like source emitting frames in ``fmt``."""

    def __init__(self, fmt: AudioFormat) -> None:
        super().__init__()
        self.output_format = fmt
        self.input_format = fmt

    def push(self, data: bytes) -> None:
        self._emit(AudioFrame(data, self.output_format))


class PlayoutSink(MediaUnit):
    """A call-like sink: records frames; ``played_ms`` is set by the test."""

    def __init__(self, fmt: AudioFormat = PCM16_24K) -> None:
        super().__init__()
        self.input_format = fmt
        self.output_format = fmt
        self.frames: list[AudioFrame] = []
        self.played_ms = 0.0
        self.queued_ms = 0.0
        self.cleared = 0

    def _on_media(self, frame: AudioFrame) -> None:
        self.frames.append(frame)
        self.queued_ms += frame.duration_ms

    def clear_media_buffer(self) -> None:
        self.cleared += 1
        self.queued_ms = 0.0


def make_client(**kw: Any) -> tuple[RealtimeAPIClient, MemoryConnection]:
    conn = MemoryConnection()
    return RealtimeAPIClient(conn, model="gpt-realtime", **kw), conn


def delta(item_id: str, audio: bytes, content_index: int = 0) -> dict[str, Any]:
    return {"type": "response.output_audio.delta", "event_id": "e", "response_id": "r",
            "item_id": item_id, "output_index": 0, "content_index": content_index,
            "delta": base64.b64encode(audio).decode()}


def queued_events(client: RealtimeAPIClient) -> list[dict[str, Any]]:
    return [payload for kind, payload, _ in client._out if kind == "event"]


SPEECH_STARTED = {"type": "input_audio_buffer.speech_started", "event_id": "e",
                  "audio_start_ms": 0, "item_id": "u1"}


# -- event mapping -----------------------------------------------------------------
def _sdk_server_types() -> list[str]:
    union = typing.get_args(RealtimeServerEvent)[0]
    return [typing.get_args(m.model_fields["type"].annotation)[0]
            for m in typing.get_args(union)]


def test_every_ga_server_event_type_has_a_constant() -> None:
    types = _sdk_server_types()
    assert "response.output_audio.delta" in types
    unmapped = [t for t in types if event_name(t) == RealtimeAPIEvents.Unknown]
    assert unmapped == []


@pytest.mark.parametrize(("server_type", "const"), [
    ("session.created", "SessionCreated"),
    ("session.updated", "SessionUpdated"),
    ("input_audio_buffer.speech_started", "InputAudioBufferSpeechStarted"),
    ("input_audio_buffer.speech_stopped", "InputAudioBufferSpeechStopped"),
    ("response.created", "ResponseCreated"),
    ("response.done", "ResponseDone"),
    ("response.output_audio.delta", "ResponseOutputAudioDelta"),
    ("response.output_audio_transcript.delta", "ResponseOutputAudioTranscriptDelta"),
    ("response.function_call_arguments.done", "ResponseFunctionCallArgumentsDone"),
    ("conversation.item.input_audio_transcription.completed",
     "ConversationItemInputAudioTranscriptionCompleted"),
    ("error", "Error"),
])
def test_required_constants_map(server_type: str, const: str) -> None:
    assert event_name(server_type) == getattr(OpenAI.RealtimeAPIEvents, const)


def test_beta_and_unknown_types_map_to_unknown() -> None:
    assert event_name("response.audio.delta") == RealtimeAPIEvents.Unknown  # beta name
    assert event_name("no.such.event") == RealtimeAPIEvents.Unknown
    assert event_name(None) == RealtimeAPIEvents.Unknown
    assert OpenAI.RealtimeAPIEvents.WebSocketClosed


def test_constants_are_distinct() -> None:
    values = [v for k, v in vars(RealtimeAPIEvents).items() if not k.startswith("_")]
    assert len(values) == len(set(values))


async def test_events_carry_vendor_json_and_client() -> None:
    client, _ = make_client()
    seen: list[Any] = []
    client.add_event_listener(RealtimeAPIEvents.ResponseDone, seen.append)
    client.add_event_listener(RealtimeAPIEvents.Unknown, seen.append)
    done = {"type": "response.done", "event_id": "e1", "response": {"id": "r1"}}
    client._handle(done)
    client._handle({"type": "future.event", "x": 1})
    assert seen[0].data == done and seen[0].client is client
    assert seen[1].name == RealtimeAPIEvents.Unknown and seen[1].data["x"] == 1


# -- formats -----------------------------------------------------------------------
def test_openai_format_objects_round_trip() -> None:
    for fmt in (PCM16_24K, PCMU_8K, PCMA_8K):
        assert from_openai_format(to_openai_format(fmt)) == fmt
    assert to_openai_format(PCMU_8K) == {"type": "audio/pcmu"}
    assert to_openai_format(PCM16_24K) == {"type": "audio/pcm", "rate": 24000}
    with pytest.raises(ValueError):
        to_openai_format(PCM16_16K)


def test_choose_format_prefers_g711_passthrough() -> None:
    client, _ = make_client()
    assert client.choose_format(PCMU_8K) == PCMU_8K
    assert client.choose_format(PCMA_8K) == PCMA_8K
    assert client.choose_format(PCM16_16K) == PCM16_24K
    assert client.choose_format(None) == PCM16_24K


async def test_pcmu_source_switches_to_pcmu_and_updates_session() -> None:
    client, _ = make_client()
    assert (client.input_format, client.output_format) == (PCM16_24K, PCM16_24K)
    call = Source(PCMU_8K)
    call.send_media_to(client)
    client.send_media_to(call)
    assert (client.input_format, client.output_format) == (PCMU_8K, PCMU_8K)
    [update] = queued_events(client)
    assert update["type"] == "session.update"
    assert update["session"]["type"] == "realtime"
    assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert update["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    # both route edges pass G.711 through untouched
    assert call._routes[client].passthrough
    assert client._routes[call].passthrough


async def test_pcm_source_keeps_pcm24k_and_sends_nothing() -> None:
    client, _ = make_client()
    Source(PCM16_16K).send_media_to(client)
    assert client.input_format == PCM16_24K
    assert queued_events(client) == []


async def test_session_update_pins_formats_and_merges_fields() -> None:
    client, _ = make_client()
    Source(PCMU_8K).send_media_to(client)
    client._out.clear()
    client.session_update({"instructions": "a"}, tools=[],
                          audio={"input": {"format": {"type": "audio/pcm", "rate": 24000}}})
    [ev] = queued_events(client)
    assert ev["session"]["instructions"] == "a" and ev["session"]["tools"] == []
    assert ev["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}


async def test_audio_after_switch_is_queued_after_session_update() -> None:
    client, _ = make_client(min_chunk_ms=40)
    call = Source(PCM16_24K)
    call.send_media_to(client)
    call.push(PCM16_24K.silence(20))  # half a chunk: still pending
    Source(PCMU_8K).send_media_to(client)  # new source replaces the old one
    kinds = [kind for kind, _, _ in client._out]
    assert kinds == ["audio", "event"]
    assert len(client._out[0][1]) == PCM16_24K.frame_bytes(20)


async def test_server_format_mismatch_is_converted_on_the_way_out() -> None:
    client, _ = make_client()
    sink = PlayoutSink(PCMU_8K)
    call = Source(PCMU_8K)
    call.send_media_to(client)
    client.send_media_to(sink)
    # the server has not confirmed the switch yet: deltas still come as pcm 24k
    client._handle(delta("a1", PCM16_24K.silence(20)))
    assert sink.frames[-1].format == PCMU_8K
    assert len(sink.frames[-1].data) == PCMU_8K.frame_bytes(20)
    client._handle({"type": "session.updated", "event_id": "e", "session": {
        "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}},
                                      "output": {"format": {"type": "audio/pcmu"}}}}})
    client._handle(delta("a1", PCMU_8K.silence(20)))
    assert sink.frames[-1].data == PCMU_8K.silence(20)


# -- send queue --------------------------------------------------------------------
async def test_on_media_never_blocks_and_bounds_the_queue() -> None:
    client, _ = make_client(max_queued_audio_ms=200, min_chunk_ms=20)
    call = Source(PCM16_24K)
    call.send_media_to(client)
    for _ in range(100):  # 2 s of audio with no sender running
        call.push(PCM16_24K.silence(20))
    assert client._audio_entries == 10
    assert client.dropped_audio_ms == pytest.approx(1800.0)


async def test_sender_coalesces_backlog_and_keeps_order() -> None:
    client, conn = make_client()
    call = Source(PCMU_8K)
    call.send_media_to(client)
    for i in range(5):
        call.push(bytes([i]) * 160)
    fut = client.response_create()
    client._start(None)
    assert await fut is True
    assert [e["type"] for e in conn.sent] == [
        "session.update", "input_audio_buffer.append", "response.create"]
    assert base64.b64decode(conn.sent[1]["audio"]) == b"".join(bytes([i]) * 160 for i in range(5))
    await client.close()
    assert await client.response_create() is False


async def test_send_tool_result_and_requests_shapes() -> None:
    client, conn = make_client()
    client._start(None)
    client.send_tool_result("call_1", {"ok": True})
    client.response_cancel()
    client.conversation_item_truncate("item_1", 0, 1234)
    await client.input_audio_buffer_clear()
    assert conn.sent[0] == {"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_1", "output": '{"ok": true}'}}
    assert conn.sent[1] == {"type": "response.create"}
    assert conn.sent[2] == {"type": "response.cancel"}
    assert conn.sent[3] == {"type": "conversation.item.truncate", "item_id": "item_1",
                            "content_index": 0, "audio_end_ms": 1234}
    assert conn.sent[4] == {"type": "input_audio_buffer.clear"}
    await client.close()


# -- barge-in ----------------------------------------------------------------------
async def test_barge_in_truncates_at_the_position_played() -> None:
    client, _ = make_client()
    sink = PlayoutSink()
    sink.played_ms, sink.queued_ms = 1000.0, 200.0  # earlier audio still queued
    client.send_media_to(sink)
    client._handle(delta("item_a", PCM16_24K.silence(500)))  # item starts at 1200 ms
    sink.played_ms = 1500.0
    order: list[str] = []

    def on_speech(e: Any) -> None:
        # the connector acted before scenario handlers run
        order.append("handler")
        assert sink.cleared == 1
        assert queued_events(client)[-1]["type"] == "conversation.item.truncate"

    client.add_event_listener(RealtimeAPIEvents.InputAudioBufferSpeechStarted, on_speech)
    client._handle(SPEECH_STARTED)
    assert order == ["handler"]
    [trunc] = queued_events(client)
    assert trunc == {"type": "conversation.item.truncate", "item_id": "item_a",
                     "content_index": 0, "audio_end_ms": 300}
    # the rest of the interrupted item is dropped
    n = len(sink.frames)
    client._handle(delta("item_a", PCM16_24K.silence(100)))
    assert len(sink.frames) == n
    # the next item plays again
    client._handle(delta("item_b", PCM16_24K.silence(100)))
    assert len(sink.frames) == n + 1


@pytest.mark.parametrize(("played", "expected"), [(1100.0, 0), (5000.0, 500)])
async def test_barge_in_clamps_to_item(played: float, expected: int) -> None:
    client, _ = make_client()
    sink = PlayoutSink()
    sink.played_ms, sink.queued_ms = 1000.0, 200.0
    client.send_media_to(sink)
    client._handle(delta("item_a", PCM16_24K.silence(500)))
    sink.played_ms = played
    client._handle(SPEECH_STARTED)
    assert queued_events(client)[-1]["audio_end_ms"] == expected


async def test_fully_played_item_is_not_truncated_but_sink_is_cleared() -> None:
    client, _ = make_client()
    sink = PlayoutSink()
    client.send_media_to(sink)
    client._handle(delta("item_a", PCM16_24K.silence(200)))
    client._handle({"type": "response.output_audio.done", "event_id": "e", "item_id": "item_a",
                    "response_id": "r", "output_index": 0, "content_index": 0})
    sink.played_ms = 200.0
    client._handle(SPEECH_STARTED)
    assert sink.cleared == 1
    assert queued_events(client) == []


async def test_barge_in_off_leaves_playout_alone() -> None:
    client, _ = make_client(barge_in=False)
    sink = PlayoutSink()
    client.send_media_to(sink)
    client._handle(delta("item_a", PCM16_24K.silence(200)))
    client._handle(SPEECH_STARTED)
    assert sink.cleared == 0 and queued_events(client) == []


async def test_manual_clear_media_buffer_truncates_too() -> None:
    client, _ = make_client(barge_in=False)
    sink = PlayoutSink()
    client.send_media_to(sink)
    client._handle(delta("item_a", PCM16_24K.silence(400)))
    sink.played_ms = 120.0
    client.clear_media_buffer()
    assert sink.cleared == 1
    assert queued_events(client)[-1]["audio_end_ms"] == 120


# -- base contract -----------------------------------------------------------------
def test_connector_error_is_gateway_error() -> None:
    assert issubclass(ConnectorError, GatewayError)


def test_connect_options_backoff() -> None:
    opts = ConnectOptions(retries=5, backoff=0.5, max_backoff=2.0)
    assert [opts.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]


async def test_connect_with_retries_counts_attempts() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("refused")
        return "ok"

    opts = ConnectOptions(retries=2, backoff=0)
    assert await connect_with_retries(flaky, opts, vendor="x") == "ok"
    calls = -10
    with pytest.raises(ConnectorError, match="3 attempt"):
        await connect_with_retries(flaky, ConnectOptions(retries=2, backoff=0), vendor="x")


async def test_non_retryable_failure_stops_at_once() -> None:
    calls = 0

    async def denied() -> None:
        nonlocal calls
        calls += 1
        raise PermissionError("401")

    with pytest.raises(ConnectorError):
        await connect_with_retries(denied, ConnectOptions(retries=3, backoff=0), vendor="x",
                                   is_retryable=lambda e: False)
    assert calls == 1


def test_capabilities_record() -> None:
    caps = OpenAI.capabilities
    assert isinstance(caps, Capabilities)
    assert PCMU_8K in caps.input_formats and PCMU_8K in caps.output_formats
    assert caps.preferred_pcm == PCM16_24K
    assert caps.barge_in and caps.truncation and caps.function_calling and caps.server_vad


def test_client_registers_with_the_running_session() -> None:
    class Session:
        units: ClassVar[list[Any]] = []

        def register_unit(self, unit: Any) -> None:
            self.units.append(unit)

        def handler_failed(self, exc: BaseException, where: str) -> None: ...

        def track_task(self, task: Any) -> None: ...

    session = Session()
    token = current_session.set(session)
    try:
        client, _ = make_client()
    finally:
        current_session.reset(token)
    assert session.units == [client]
    assert isinstance(client, VoiceAIClient)


def test_repr_has_no_secret() -> None:
    client, _ = make_client()
    assert "sk-" not in repr(client)


# -- per-turn latency ----------------------------------------------------------------
def _created(response_id: str) -> dict[str, Any]:
    return {"type": "response.created", "event_id": "e", "response": {"id": response_id}}


def _stopped(item_id: str = "u1") -> dict[str, Any]:
    return {"type": "input_audio_buffer.speech_stopped", "event_id": "e",
            "audio_end_ms": 900, "item_id": item_id}


def test_turn_latency_counts_only_responses_created_after_the_speech_end() -> None:
    session = FakeSession()
    client, _ = make_client(owner=session)
    seen: list[Any] = []
    client.add_event_listener(VoiceAIEvents.TurnLatency, seen.append)
    client._handle(_created("r0"))  # a response in progress before the user turn
    client._handle(SPEECH_STARTED)
    client._handle(_stopped())
    client._handle({**delta("a0", b"\x01\x00" * 240), "response_id": "r0"})  # its tail
    assert seen == []
    client._handle(_created("r1"))
    client._handle({**delta("a1", b""), "response_id": "r1"})  # no audio yet
    assert seen == []
    client._handle({**delta("a1", b"\x01\x00" * 240), "response_id": "r1"})
    client._handle({**delta("a1", b"\x01\x00" * 240), "response_id": "r1"})
    [ev] = seen
    assert ev.turn == 1 and ev.speech_end_to_audio_ms >= 0 and ev.stt_ms is None
    assert session.record.voice_ai_turns == [
        {"vendor": "openai", "turn": 1, "speech_end_to_audio_ms": ev.speech_end_to_audio_ms,
         "stt_ms": None, "llm_first_token_ms": None, "tts_first_byte_ms": None}]


def test_speech_resumed_before_the_answer_is_one_turn() -> None:
    session = FakeSession()
    client, _ = make_client(owner=session)
    client._handle(SPEECH_STARTED)
    client._handle(_stopped())
    client._handle(_created("r1"))  # cancelled by the user going on
    client._handle({**SPEECH_STARTED, "item_id": "u2"})
    client._handle(_stopped("u2"))
    client._handle({**delta("a1", b"\x01\x00" * 240), "response_id": "r1"})
    assert session.record.voice_ai_turns == []
    client._handle(_created("r2"))
    client._handle({**delta("a2", b"\x01\x00" * 240), "response_id": "r2"})
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1]


def test_response_create_without_user_speech_is_not_a_turn() -> None:
    session = FakeSession()
    client, _ = make_client(owner=session)
    client._handle(_created("r1"))
    client._handle({**delta("a1", b"\x01\x00" * 240), "response_id": "r1"})
    assert session.record.voice_ai_turns == []
