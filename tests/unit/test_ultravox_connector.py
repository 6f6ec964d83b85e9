"""Unit tests of the Ultravox connector without sockets.

Covers the data message -> ``WebSocketAPIEvents`` mapping, the create-call body,
capabilities (PCM16 only, per-direction rates), the non-blocking send queue, the
barge-in clear, tool calls, and the fake's message checks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from connectors.base import ConnectorError, VoiceAIClient, VoiceAIEvents
from connectors.ultravox import (
    SERVER_EVENT_MAP,
    Ultravox,
    WebSocketAPIClient,
    WebSocketAPIEvents,
    build_call_body,
    event_name,
    ultravox_capabilities,
)
from connectors.ultravox.connect import _camel, _retryable
from gateway.media.format import PCM16_8K, PCM16_16K, PCM16_24K, PCMU_8K, AudioFrame
from gateway.runtime.events import Event
from gateway.runtime.media_unit import MediaUnit
from tests.fakes.fake_session import FakeSession
from tests.fakes.fake_ultravox import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    InvalidMessage,
    check_call_body,
    check_message,
)


class MemoryWebSocket:
    """Stands in for a websockets client connection; ``block`` stalls sends."""

    def __init__(self) -> None:
        self.sent: list[bytes | str] = []
        self.incoming: asyncio.Queue[bytes | str | BaseException] = asyncio.Queue()
        self.block = asyncio.Event()
        self.block.set()

    async def send(self, message: bytes | str) -> None:
        await self.block.wait()
        self.sent.append(message)

    async def recv(self) -> bytes | str:
        item = await self.incoming.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        from websockets.exceptions import ConnectionClosedOK
        from websockets.frames import Close

        self.incoming.put_nowait(
            ConnectionClosedOK(Close(code, reason), Close(code, reason), True))

    def json_sent(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.sent if isinstance(m, str)]


class Sink(MediaUnit):
    def __init__(self, fmt: Any) -> None:
        super().__init__()
        self.input_format = fmt
        self.output_format = fmt
        self.frames: list[bytes] = []
        self.cleared = 0
        self.played_ms = 0.0
        self.queued_ms = 0.0

    def _on_media(self, frame: AudioFrame) -> None:
        self.frames.append(frame.data)

    def clear_media_buffer(self) -> None:
        self.cleared += 1

    def push(self, data: bytes) -> None:
        self._emit(AudioFrame(data, self.output_format))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def make_client(**kw: Any) -> tuple[WebSocketAPIClient, MemoryWebSocket]:
    ws = MemoryWebSocket()
    client = WebSocketAPIClient(ws, call={"callId": "c1", "joinUrl": "ws://x"}, **kw)
    client._start()
    return client, ws


# -- mapping and namespace ------------------------------------------------------------
def test_event_map() -> None:
    assert event_name("playback_clear_buffer") == WebSocketAPIEvents.PlaybackClearBuffer
    assert event_name("client_tool_invocation") == WebSocketAPIEvents.ClientToolInvocation
    assert event_name("state") == WebSocketAPIEvents.State
    assert event_name("transcript") == WebSocketAPIEvents.Transcript
    assert event_name("debug") == WebSocketAPIEvents.Debug
    assert event_name("call_started") == WebSocketAPIEvents.CallStarted
    assert event_name("nope") == event_name(None) == WebSocketAPIEvents.Unknown
    assert WebSocketAPIEvents.ToolCall == VoiceAIEvents.ToolCall
    assert WebSocketAPIEvents.WebSocketClosed == VoiceAIEvents.WebSocketClosed
    assert set(SERVER_EVENT_MAP) == set(SERVER_MESSAGES)  # the fake knows every mapped type
    assert len(set(SERVER_EVENT_MAP.values())) == len(SERVER_EVENT_MAP)


def test_namespace() -> None:
    assert Ultravox.WebSocketAPIEvents is WebSocketAPIEvents
    assert Ultravox.WebSocketAPIClient is WebSocketAPIClient
    assert issubclass(WebSocketAPIClient, VoiceAIClient)
    with pytest.raises(TypeError):
        Ultravox()


def test_capabilities_are_pcm16_only_per_direction() -> None:
    caps = ultravox_capabilities(8000, 24000)
    assert caps.input_formats == (PCM16_8K,) and caps.output_formats == (PCM16_24K,)
    assert caps.server_vad and caps.barge_in and caps.function_calling and caps.transcripts
    assert not caps.truncation
    assert Ultravox.capabilities.pcm_input == PCM16_16K


# -- create-call body -------------------------------------------------------------------
def test_call_body_shape() -> None:
    body = build_call_body(
        agent_id=None, system_prompt="Hi", model="m", voice=None, selected_tools=[],
        input_sample_rate=8000, output_sample_rate=16000, client_buffer_size_ms=60,
        call_params={"first_speaker_settings": {"user": {}}, "maxDuration": "60s",
                     "languageHint": None})
    assert body == {
        "systemPrompt": "Hi", "model": "m", "selectedTools": [],
        "firstSpeakerSettings": {"user": {}}, "maxDuration": "60s",
        "medium": {"serverWebSocket": {"inputSampleRate": 8000, "outputSampleRate": 16000,
                                       "clientBufferSizeMs": 60}},
    }
    check_call_body(body, agent=False)
    assert _camel("initial_output_medium") == "initialOutputMedium"
    assert _camel("voice") == "voice"


def test_agent_call_refuses_plain_call_fields() -> None:
    with pytest.raises(ValueError, match="systemPrompt"):
        build_call_body(agent_id="a", system_prompt="x", model=None, voice=None,
                        selected_tools=None, input_sample_rate=16000,
                        output_sample_rate=16000, client_buffer_size_ms=60, call_params={})
    with pytest.raises(ValueError, match="medium"):
        build_call_body(agent_id=None, system_prompt=None, model=None, voice=None,
                        selected_tools=None, input_sample_rate=16000,
                        output_sample_rate=16000, client_buffer_size_ms=60,
                        call_params={"medium": {"twilio": {}}})


async def test_bad_arguments_are_connector_errors() -> None:
    with pytest.raises(ConnectorError, match="agent call"):
        await Ultravox.create_websocket_api_client(api_key="k", agent_id="a", voice="Mark",
                                                   base_url="http://127.0.0.1:9/api")


def test_retryable_classification() -> None:
    from websockets.datastructures import Headers
    from websockets.exceptions import InvalidStatus, InvalidURI
    from websockets.http11 import Response

    def status(code: int) -> InvalidStatus:
        return InvalidStatus(Response(code, "x", Headers()))

    assert not _retryable(status(403))
    assert _retryable(status(503)) and _retryable(status(429))
    assert _retryable(OSError("refused"))
    assert not _retryable(InvalidURI("x", "bad"))


# -- media and queue ---------------------------------------------------------------------
async def test_audio_up_is_binary_and_never_blocks() -> None:
    client, ws = make_client(max_queued_audio_ms=100)
    src = Sink(PCM16_16K)
    src.send_media_to(client)
    ws.block.clear()  # the vendor link stalls
    await settle()
    for i in range(20):  # 400 ms of 20 ms frames while nothing can be written
        src.push(bytes([i]) * 640)
    assert client._audio_entries <= 5 + 1
    assert client.dropped_audio_ms > 0
    ws.block.set()
    await settle()
    audio = [m for m in ws.sent if isinstance(m, bytes)]
    assert audio and all(len(m) == 640 for m in audio)
    assert audio[-1] == bytes([19]) * 640  # the newest audio is kept
    await client.close()


async def test_small_frames_are_coalesced_to_min_chunk() -> None:
    client, ws = make_client(min_chunk_ms=20)
    src = Sink(PCM16_16K)
    src.send_media_to(client)
    for _ in range(4):
        src.push(b"\x00" * 160)  # 5 ms each
    await settle()
    assert ws.sent == [b"\x00" * 640]
    await client.close()


async def test_pcmu_source_still_gets_pcm16() -> None:
    client, _ = make_client()
    src = Sink(PCMU_8K)
    src.send_media_to(client)
    assert client.input_format == PCM16_16K  # no G.711: the route edge converts
    await client.close()


async def test_audio_down_is_emitted_in_output_format() -> None:
    client, ws = make_client(output_sample_rate=24000)
    sink = Sink(PCM16_24K)
    client.send_media_to(sink)
    ws.incoming.put_nowait(b"\x01\x02" * 480)
    await settle()
    assert sink.frames == [b"\x01\x02" * 480]
    await client.close()


# -- data messages ------------------------------------------------------------------------
async def test_playback_clear_buffer_clears_before_dispatch() -> None:
    client, ws = make_client()
    sink = Sink(PCM16_16K)
    client.send_media_to(sink)
    seen: list[int] = []
    client.add_event_listener(WebSocketAPIEvents.PlaybackClearBuffer,
                              lambda e: seen.append(sink.cleared))
    ws.incoming.put_nowait('{"type": "playback_clear_buffer"}')
    await settle()
    assert seen == [1]
    await client.close()


async def test_tool_call_event_and_result_message() -> None:
    client, ws = make_client()
    calls: list[Event] = []
    client.add_event_listener(VoiceAIEvents.ToolCall, calls.append)
    msg = {"type": "client_tool_invocation", "toolName": "t", "invocationId": "i1",
           "parameters": {"a": 1}}
    ws.incoming.put_nowait(json.dumps(msg))
    await settle()
    [ev] = calls
    assert (ev.name, ev.call_id, ev.arguments, ev.data, ev.client) == (
        "t", "i1", {"a": 1}, msg, client)
    ok = await client.send_tool_result("i1", [1, 2])
    assert ok is True
    assert ws.json_sent() == [{"type": "client_tool_result", "invocationId": "i1",
                               "result": "[1, 2]"}]
    for sent in ws.json_sent():
        check_message(sent, CLIENT_MESSAGES)
    await client.close()


async def test_websocket_closed_once_and_requests_after_close() -> None:
    client, ws = make_client()
    closed: list[Event] = []
    client.add_event_listener(WebSocketAPIEvents.WebSocketClosed, closed.append)
    await ws.close(1011, "gone")
    await settle()
    assert [(e.code, e.reason) for e in closed] == [(1011, "gone")]
    assert client.closed
    assert (await client.send_text("x")) is False
    await client.close()
    assert len(closed) == 1


async def test_repr_has_no_secrets() -> None:
    client, _ = make_client()
    assert "c1" in repr(client) and "key" not in repr(client).lower()
    await client.close()


def test_set_output_medium_validates() -> None:
    client = WebSocketAPIClient(MemoryWebSocket())
    with pytest.raises(ValueError):
        client.set_output_medium("video")


# -- the fake's checks --------------------------------------------------------------------
def test_fake_checks_reject_unknown_and_missing_keys() -> None:
    check_message({"type": "client_tool_result", "invocationId": "i", "result": "r"},
                  CLIENT_MESSAGES)
    with pytest.raises(InvalidMessage, match="unknown keys"):
        check_message({"type": "client_tool_result", "invocationId": "i", "output": "r"},
                      CLIENT_MESSAGES)
    with pytest.raises(InvalidMessage, match="lacks"):
        check_message({"type": "client_tool_invocation", "toolName": "t"}, SERVER_MESSAGES)
    with pytest.raises(InvalidMessage, match="wrong type"):
        check_message({"type": "client_tool_result", "invocationId": "i", "result": {}},
                      CLIENT_MESSAGES)
    with pytest.raises(InvalidMessage, match="unknown data message"):
        check_message({"type": "user_text_messagee", "text": "x"}, CLIENT_MESSAGES)
    with pytest.raises(InvalidMessage, match="unknown fields"):
        check_call_body({"systemPrompt": "x", "medium": {"serverWebSocket": {
            "inputSampleRate": 16000}}}, agent=True)
    with pytest.raises(InvalidMessage, match="inputSampleRate"):
        check_call_body({"medium": {"serverWebSocket": {"outputSampleRate": 16000}}},
                        agent=False)


# -- per-turn latency ------------------------------------------------------------------
def _user(final: bool) -> dict[str, Any]:
    return {"type": "transcript", "role": "user", "medium": "voice", "text": "hi",
            "final": final, "ordinal": 1}


def test_one_turn_latency_per_user_turn_even_with_a_tool_pause() -> None:
    session = FakeSession()
    client = WebSocketAPIClient(MemoryWebSocket(), call={"callId": "c1"}, owner=session)
    client._handle(_user(False))
    client._handle({"type": "state", "state": "thinking"})
    client._on_audio(b"\x01\x00" * 160)
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1]
    # the final transcript, a tool pause and more audio of the same answer: same turn
    client._handle(_user(True))
    client._handle({"type": "state", "state": "thinking"})
    client._on_audio(b"\x01\x00" * 160)
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1]
    # the next turn starts when the agent listens again
    client._handle({"type": "state", "state": "listening"})
    client._handle(_user(True))
    client._handle({"type": "state", "state": "thinking"})
    client._on_audio(b"\x01\x00" * 160)
    assert [t["turn"] for t in session.record.voice_ai_turns] == [1, 2]
    assert all(t["speech_end_to_audio_ms"] >= 0 for t in session.record.voice_ai_turns)


def test_audio_without_a_speech_end_is_not_a_turn() -> None:
    session = FakeSession()
    client = WebSocketAPIClient(MemoryWebSocket(), call={"callId": "c1"}, owner=session)
    client._handle(_user(False))  # the user is still speaking
    client._on_audio(b"\x01\x00" * 160)  # the tail of an earlier answer
    assert session.record.voice_ai_turns == []
