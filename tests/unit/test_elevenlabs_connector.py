"""Unit tests of the ElevenLabs Agents connector (no network: a stub connection)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from connectors.base import ConnectorError, VoiceAIEvents
from connectors.elevenlabs import ELEVENLABS_AGENTS_CAPABILITIES, AgentsClient, ElevenLabs
from connectors.elevenlabs.connect import (
    _describe,
    _retryable,
    conversation_url,
    initiation_message,
)
from connectors.elevenlabs.events import SERVER_EVENT_MAP, event_name
from connectors.elevenlabs.formats import (
    INPUT_FORMAT_NAMES,
    OUTPUT_FORMAT_NAMES,
    from_elevenlabs_format,
    to_elevenlabs_format,
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
from tests.fakes.fake_elevenlabs_agents import validate_client_message
from tests.fakes.fake_session import FakeSession

E = ElevenLabs.AgentsEvents


class StubConn:
    """Records sends; ``recv`` blocks until closed."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self.block = asyncio.Event()
        self.block.set()

    async def send(self, text: str) -> None:
        await self.block.wait()
        self.sent.append(json.loads(text))

    async def recv(self) -> str:
        await self.closed.wait()
        from websockets.exceptions import ConnectionClosedOK
        from websockets.frames import Close

        raise ConnectionClosedOK(Close(1000, "bye"), Close(1000, "bye"))

    async def close(self) -> None:
        self.closed.set()


class Sink(MediaUnit):
    def __init__(self, fmt: AudioFormat) -> None:
        super().__init__()
        self.input_format = fmt
        self.output_format = fmt
        self.frames: list[AudioFrame] = []
        self.cleared = 0
        self.played_ms = 0.0
        self.queued_ms = 0.0

    def _on_media(self, frame: AudioFrame) -> None:
        self.frames.append(frame)

    def clear_media_buffer(self) -> None:
        self.cleared += 1


def metadata(fin: str = "ulaw_8000", fout: str = "ulaw_8000") -> dict[str, Any]:
    return {"type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": "conv_1", "user_input_audio_format": fin,
                "agent_output_audio_format": fout}}


def audio(eid: int, data: bytes = b"\x01\x02") -> dict[str, Any]:
    return {"type": "audio", "audio_event": {"audio_base_64": base64.b64encode(data).decode(),
                                             "event_id": eid}}


async def make(fin: str = "ulaw_8000", fout: str = "ulaw_8000",
               **kw: Any) -> tuple[AgentsClient, StubConn]:
    conn = StubConn()
    client = AgentsClient(conn, metadata(fin, fout), agent_id="agent_x", **kw)
    return client, conn


# -- formats and names --------------------------------------------------------------
def test_format_names_round_trip() -> None:
    assert "ulaw_8000" in OUTPUT_FORMAT_NAMES and "pcm_16000" in INPUT_FORMAT_NAMES
    for name in OUTPUT_FORMAT_NAMES:
        fmt = from_elevenlabs_format(name)
        assert fmt is not None and to_elevenlabs_format(fmt) == name
    assert from_elevenlabs_format("ulaw_8000") == PCMU_8K
    assert from_elevenlabs_format("pcm_16000") == PCM16_16K
    assert from_elevenlabs_format("alaw_8000") is None
    assert from_elevenlabs_format(None) is None
    with pytest.raises(ValueError):
        to_elevenlabs_format(PCMA_8K)


def test_capabilities_offer_ulaw_passthrough_and_pcm16k() -> None:
    caps = ELEVENLABS_AGENTS_CAPABILITIES
    assert PCMU_8K in caps.input_formats and PCMU_8K in caps.output_formats
    assert caps.pcm_input == PCM16_16K and caps.pcm_output == PCM16_16K
    assert caps.function_calling and caps.barge_in and caps.server_vad and caps.transcripts
    assert ElevenLabs.capabilities is caps


def test_event_names() -> None:
    assert event_name("audio") == E.Audio
    assert event_name("client_tool_call") == E.ClientToolCall
    assert event_name("nope") == E.Unknown and event_name(None) == E.Unknown
    assert E.ToolCall == VoiceAIEvents.ToolCall
    assert E.WebSocketClosed == VoiceAIEvents.WebSocketClosed
    assert len(set(SERVER_EVENT_MAP.values())) == len(SERVER_EVENT_MAP)


def test_conversation_url_follows_base_url() -> None:
    assert conversation_url("agent_1") == (
        "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_1")
    assert conversation_url("a b", "http://127.0.0.1:9/", "staging") == (
        "ws://127.0.0.1:9/v1/convai/conversation?agent_id=a%20b&environment=staging")


def test_initiation_message_validates_with_sdk_model() -> None:
    msg = initiation_message({"agent": {"first_message": "Hi"}}, {"x": 1}, user_id="u")
    assert msg["type"] == "conversation_initiation_client_data"
    assert msg["conversation_config_override"] == {"agent": {"first_message": "Hi"}}
    validate_client_message(msg)
    with pytest.raises(ConnectorError):
        initiation_message({"agent": {"first_message": ["not", "a", "string"]}})


def test_retry_policy() -> None:
    class Status(Exception):
        def __init__(self, code: int) -> None:
            self.status_code = code

    assert not _retryable(Status(401)) and not _retryable(Status(403))
    assert _retryable(Status(503)) and _retryable(Status(429))
    assert _retryable(OSError("refused"))
    assert "authentication refused" in _describe(Status(401))


# -- the client ---------------------------------------------------------------------
async def test_formats_follow_metadata_and_passthrough() -> None:
    client, _ = await make()
    assert client.input_format == PCMU_8K and client.output_format == PCMU_8K
    assert client.choose_formats(PCMU_8K) == (PCMU_8K, PCMU_8K)
    assert client.choose_formats(PCMA_8K) == (PCMU_8K, PCMU_8K)
    assert client.choose_formats(PCM16_24K) == (PCMU_8K, PCMU_8K)
    pcm, _ = await make("pcm_16000", "pcm_16000")
    assert pcm.choose_formats(PCMU_8K) == (PCM16_16K, PCM16_16K)
    mixed, _ = await make("ulaw_8000", "pcm_24000")
    assert (mixed.input_format, mixed.output_format) == (PCMU_8K, PCM16_24K)
    with pytest.raises(ValueError, match="unsupported audio formats"):
        await make("opus_48000", "ulaw_8000")


async def test_media_in_never_blocks_and_is_bounded() -> None:
    client, conn = await make(max_queued_audio_ms=100)
    conn.block.clear()  # the socket is stuck
    client._start([])
    frame = AudioFrame(b"\xff" * 160, PCMU_8K)
    for _ in range(50):  # 1 s of audio while nothing can be sent
        client._on_media(frame)
    assert client._audio_entries <= 5
    assert client.dropped_audio_ms > 0
    conn.block.set()
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        while not any("user_audio_chunk" in m for m in conn.sent):
            await asyncio.sleep(0.001)
    await client.close()


async def test_audio_after_interruption_is_dropped_and_sink_cleared() -> None:
    client, _ = await make()
    sink = Sink(PCMU_8K)
    client.send_media_to(sink)
    order: list[str] = []
    client.add_event_listener(E.Interruption, lambda e: order.append(f"event:{sink.cleared}"))
    client._handle(audio(5))
    client._handle({"type": "interruption", "interruption_event": {"event_id": 5}})
    client._handle(audio(4))
    client._handle(audio(5))
    client._handle(audio(6, b"\x09"))
    assert order == ["event:1"]
    assert [f.data for f in sink.frames] == [b"\x01\x02", b"\x09"]
    assert client.dropped_audio_events == 2
    await client.close()


async def test_ping_tool_call_and_results_are_queued() -> None:
    client, conn = await make()
    calls: list[Any] = []
    client.add_event_listener(VoiceAIEvents.ToolCall, calls.append)
    client._start([])
    client._handle({"type": "ping", "ping_event": {"event_id": 7, "ping_ms": None}})
    client._handle({"type": "client_tool_call", "client_tool_call": {
        "tool_name": "t", "tool_call_id": "c1", "parameters": {"a": 1}}})
    assert calls[0].name == "t" and calls[0].call_id == "c1" and calls[0].arguments == {"a": 1}
    assert await client.send_tool_result("c1", "ok")
    assert conn.sent[0] == {"type": "pong", "event_id": 7}
    assert conn.sent[1] == {"type": "client_tool_result", "tool_call_id": "c1",
                            "result": "ok", "is_error": False}
    for m in conn.sent:
        validate_client_message(m)
    await client.close()


async def test_close_dispatches_once_and_leaves_media_alone() -> None:
    client, _ = await make()
    sink = Sink(PCMU_8K)
    client.send_media_to(sink)
    closed: list[Any] = []
    client.add_event_listener(E.WebSocketClosed, closed.append)
    client._start([])
    await client.close()
    await client.close()
    assert len(closed) == 1 and client.closed and sink.media_source is None
    client._on_media(AudioFrame(b"\xff" * 160, PCMU_8K))  # ignored after close
    assert not (await client.send_user_message("x"))


def test_audio_format_is_pcm16_for_pcm_names() -> None:
    fmt = from_elevenlabs_format("pcm_22050")
    assert fmt == AudioFormat(Encoding.PCM16, 22050)


# -- per-turn latency ----------------------------------------------------------------
async def test_turn_latency_skips_dropped_and_earlier_audio() -> None:
    session = FakeSession()
    client, _ = await make(owner=session)
    client._handle(audio(3))  # the greeting: no transcript before it
    client._handle({"type": "interruption", "interruption_event": {"event_id": 3}})
    client._handle({"type": "user_transcript",
                    "user_transcription_event": {"user_transcript": "hi", "event_id": 4}})
    client._handle(audio(3))  # dropped: part of the interrupted answer
    client._handle(audio(2))  # dropped too
    assert session.record.voice_ai_turns == []
    client._handle(audio(5))
    client._handle(audio(5))
    [turn] = session.record.voice_ai_turns
    assert turn["turn"] == 1 and turn["speech_end_to_audio_ms"] >= 0
    # a transcript without event_id: the next audio answers it
    client._handle({"type": "user_transcript",
                    "user_transcription_event": {"user_transcript": "and?"}})
    client._handle(audio(5))
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1, 2]
    await client.close()
