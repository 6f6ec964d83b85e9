"""Deepgram Voice Agent connector: a Voice AI media unit on the official SDK.

Follows the Voice Agent API as typed by ``deepgram-sdk``
(``deepgram.agent.v1``): the server greets with ``Welcome``, the client sends
``Settings`` (audio formats, listen/think/speak providers, prompt, functions),
the server confirms with ``SettingsApplied``; audio then flows as binary
WebSocket frames both ways. Other messages: ``FunctionCallRequest`` /
``FunctionCallResponse``, ``UserStartedSpeaking`` (barge-in), ``KeepAlive``,
``UpdatePrompt``/``UpdateSpeak``, ``InjectAgentMessage``/``InjectUserMessage``.

Media: frames routed into the client are queued (bounded, never blocking the
20 ms media clock) and sent by one sender task; audio waits until
``SettingsApplied`` (Deepgram refuses audio before its settings). Agent audio
(``container: "none"``, raw frames) is emitted to the client's sinks.

When Settings go out: the audio formats are part of ``Settings`` and cannot be
changed later in the session, so with ``audio_format`` left as None they are
sent when the first source attaches (``VoxEngine.send_media_between(call, ai)``
right after the client is created): a PCMU/PCMA call gets G.711 passthrough
both ways, anything else PCM16 16 kHz in / 24 kHz out. If no source attaches
within ``settings_delay`` seconds, the PCM16 defaults are sent. Later sources
keep the formats already sent (the route edge converts).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from connectors.base import Capabilities, VoiceAIClient
from connectors.deepgram.events import VoiceAgentEvents, event_name
from connectors.deepgram.settings import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    build_settings,
    validate_settings,
)
from gateway.media.format import AudioFormat, AudioFrame, Encoding
from gateway.runtime.events import ErrorSink, Event

log = logging.getLogger(__name__)

#: What the Deepgram Voice Agent API supports.
DEEPGRAM_AGENT_CAPABILITIES = Capabilities(
    input_formats=INPUT_FORMATS,
    output_formats=OUTPUT_FORMATS,
    server_vad=True,
    barge_in=True,
    truncation=False,  # the agent stops itself on UserStartedSpeaking; no cut API
    function_calling=True,
    transcripts=True,
)

#: Close code reported when the connection dropped without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE = 1006

_AUDIO = "audio"
_SETTINGS = "settings"
_MESSAGE = "message"

#: Client message ``type`` -> the SDK socket's typed send method.
_SEND_METHODS = {
    "Settings": "send_settings",
    "FunctionCallResponse": "send_function_call_response",
    "KeepAlive": "send_keep_alive",
    "UpdatePrompt": "send_update_prompt",
    "UpdateSpeak": "send_update_speak",
    "UpdateThink": "send_update_think",
    "UpdateListen": "send_update_listen",
    "InjectAgentMessage": "send_inject_agent_message",
    "InjectUserMessage": "send_inject_user_message",
    "ForceEndTurn": "send_force_end_turn",
}


class VoiceAgentClient(VoiceAIClient):
    """A connected Deepgram Voice Agent session, as a media unit and event target.

    Create it with :func:`~connectors.deepgram.connect.create_voice_agent_client`
    (``Deepgram.create_voice_agent_client``). Every server message is dispatched
    as a :class:`~connectors.deepgram.events.VoiceAgentEvents` constant with
    ``event.data`` (the vendor JSON, a dict), ``event.message`` (the SDK's typed
    message, None for unknown types) and ``event.client``. Client-side function
    calls are also dispatched as ``VoiceAIEvents.ToolCall``; answer with
    :meth:`send_tool_result`.

    Request methods never block: they queue the message behind queued audio and
    return an ``asyncio.Future[bool]`` resolving True once written (False if the
    client closed first).

    Args:
        socket: an entered SDK ``AsyncV1SocketClient`` (``client.agent.v1.connect()``).
        closer: coroutine function closing the socket (exits the SDK's context).
        settings_args: keyword arguments of :func:`build_settings` (agent parts).
        audio_format: pinned (input, output) formats whose Settings were already
            sent and applied at connect; None to send Settings on first source.
        barge_in: clear the sinks' playout on ``UserStartedSpeaking``.
        on_websocket_closed: called with the ``WebSocketClosed`` event.
        settings_delay: seconds to wait for a source before sending PCM Settings.
        keepalive_interval: send ``KeepAlive`` after this many idle seconds.
        max_queued_audio_ms: caller audio waiting beyond this is dropped, oldest first.
        min_chunk_ms: audio is sent in binary frames of at least this many ms.
        owner: the owning session (default: the one running now).
    """

    capabilities = DEEPGRAM_AGENT_CAPABILITIES
    vendor = "deepgram"

    def __init__(
        self,
        socket: Any,
        *,
        closer: Callable[[], Coroutine[Any, Any, Any]] | None = None,
        settings_args: dict[str, Any] | None = None,
        audio_format: tuple[AudioFormat, AudioFormat] | None = None,
        barge_in: bool = True,
        on_websocket_closed: Callable[[Event], Any] | None = None,
        settings_delay: float = 0.5,
        keepalive_interval: float = 5.0,
        max_queued_audio_ms: float = 2000.0,
        min_chunk_ms: int = 20,
        owner: ErrorSink | None = None,
    ) -> None:
        super().__init__(owner)
        self._socket = socket
        self._closer = closer
        self._settings_args = dict(settings_args or {})
        self.barge_in = barge_in
        self._on_websocket_closed = on_websocket_closed
        self.settings_delay = settings_delay
        self.keepalive_interval = keepalive_interval
        self._max_audio_entries = max(1, int(max_queued_audio_ms // max(min_chunk_ms, 1)))
        self._min_chunk_ms = min_chunk_ms
        self._out: deque[tuple[str, Any, asyncio.Future[bool] | None]] = deque()
        self._audio_entries = 0
        self._wakeup = asyncio.Event()
        self._pending = bytearray()
        self._carry = b""
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed_dispatched = False
        self._calls: dict[str, str] = {}
        self._settings_sent = False
        #: Set once the server sent ``SettingsApplied``.
        self.settings_applied = asyncio.Event()
        #: The ``Settings`` message sent (a dict), once sent.
        self.settings: dict[str, Any] | None = None
        #: ``request_id`` of the server's ``Welcome``.
        self.request_id: str = ""
        #: ms of caller audio dropped because the send queue was full.
        self.dropped_audio_ms = 0.0
        #: WebSocket close code/reason once closed (RFC 6455 §7.4).
        self.close_code: int | None = None
        self.close_reason: str = ""
        if audio_format is not None:
            self.input_format, self.output_format = audio_format
            self._settings_sent = True
            self.settings = build_settings(*audio_format, **self._settings_args)
            self.settings_applied.set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<Deepgram VoiceAgentClient {state} in={self.input_format} "
                f"out={self.output_format}>")

    # -- lifecycle --------------------------------------------------------------
    def _start(self, early: list[Any] | None = None) -> None:
        """Start the reader and sender; ``early`` messages (Welcome ...) are dispatched first."""
        self._reader = asyncio.ensure_future(self._read_loop(list(early or ())))
        self._sender = asyncio.ensure_future(self._send_loop())
        if not self._settings_sent:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(self.settings_delay, 0.0), self._settings_timeout)

    def _settings_timeout(self) -> None:
        self._timer = None
        if not self._settings_sent and not self._closed:
            log.info("deepgram: no source attached after %.1fs; sending PCM Settings",
                     self.settings_delay)
            self.send_settings()

    async def wait_settings_applied(self, timeout: float | None = None) -> bool:
        """Wait for ``SettingsApplied``; False on timeout or when the client closed."""
        waiter = asyncio.ensure_future(self.settings_applied.wait())
        reader = self._reader
        wait_on: set[asyncio.Future[Any]] = {waiter}
        if reader is not None:
            wait_on.add(reader)
        try:
            await asyncio.wait(wait_on, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return self.settings_applied.is_set() and not self._closed

    async def close(self) -> None:
        """Close the WebSocket (code 1000) and drop every media route; idempotent.

        ``WebSocketClosed`` is dispatched (once) before this returns. The calls
        this client was connected to are left alone.
        """
        already = self._closed
        self._closed = True
        self.stop_all_media()
        self._cancel_sender()
        if not already:
            await self._close_socket()
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            try:
                await asyncio.wait_for(asyncio.shield(reader), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                reader.cancel()
        if not self._closed_dispatched:
            self._connection_lost(1000, "closed by client")

    async def _close_socket(self) -> None:
        closer, self._closer = self._closer, None
        if closer is None:
            return
        try:
            await asyncio.wait_for(closer(), 5.0)
        except Exception as exc:  # already gone: nothing left to close
            log.debug("deepgram: websocket close failed: %r", exc)

    def _cancel_sender(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
        while self._out:
            _, _, fut = self._out.popleft()
            if fut is not None and not fut.done():
                fut.set_result(False)
        self._audio_entries = 0
        self._pending.clear()

    def _connection_lost(self, code: int, reason: str) -> None:
        """The socket is gone: stop media, dispatch ``WebSocketClosed`` once."""
        self._closed = True
        self.close_code = code
        self.close_reason = reason
        self._cancel_sender()
        self.stop_all_media()
        if self._closed_dispatched:
            return
        self._closed_dispatched = True
        log.info("deepgram: websocket closed code=%s reason=%r", code, reason)
        ev = self.dispatch(
            VoiceAgentEvents.WebSocketClosed,
            data={"code": code, "reason": reason},
            client=self,
            code=code,
            reason=reason,
        )
        cb = self._on_websocket_closed
        if cb is not None:
            self._call(cb, ev)

    # -- tasks ------------------------------------------------------------------
    async def _read_loop(self, early: list[Any]) -> None:
        from websockets.exceptions import ConnectionClosed

        code, reason = ABNORMAL_CLOSURE, ""
        try:
            for msg in early:
                self._handle(msg)
            while True:
                try:
                    msg = await self._socket.recv()
                except ValueError:
                    log.warning("deepgram: dropped a non-JSON text message")
                    continue
                if isinstance(msg, bytes | bytearray):
                    self._on_agent_audio(bytes(msg))
                else:
                    self._handle(msg)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            if rcvd is not None:
                code, reason = rcvd.code, rcvd.reason
            elif exc.sent is not None and self._closed:
                code, reason = exc.sent.code, exc.sent.reason
        except asyncio.CancelledError:
            self._connection_lost(1000, "closed by client")
            raise
        except Exception as exc:
            log.exception("deepgram: reader failed")
            reason = type(exc).__name__
        self._connection_lost(code, reason)
        if self._closer is not None:
            await self._close_socket()

    def _ready(self) -> bool:
        return bool(self._out) and (self.settings_applied.is_set()
                                    or self._out[0][0] == _SETTINGS)

    async def _send_loop(self) -> None:
        from websockets.exceptions import ConnectionClosed

        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        while True:
            while not self._ready():
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.keepalive_interval)
                except TimeoutError:
                    if (self.settings_applied.is_set()
                            and loop.time() - last_sent >= self.keepalive_interval):
                        try:
                            await self._socket.send_keep_alive()
                        except ConnectionClosed:
                            return
                        last_sent = loop.time()
            kind, payload, fut = self._out.popleft()
            try:
                if kind == _AUDIO:
                    self._audio_entries -= 1
                    chunks = [payload]
                    # Behind schedule: coalesce queued audio into one frame (<= 200 ms).
                    limit = self.input_format.frame_bytes(200) if self.input_format else 0
                    size = len(payload)
                    while self._out and self._out[0][0] == _AUDIO and size < limit:
                        nxt = self._out.popleft()[1]
                        self._audio_entries -= 1
                        chunks.append(nxt)
                        size += len(nxt)
                    await self._socket.send_media(b"".join(chunks))
                else:
                    await self._write_message(payload)
            except asyncio.CancelledError:
                if fut is not None and not fut.done():
                    fut.set_result(False)
                raise
            except ConnectionClosed:
                if fut is not None and not fut.done():
                    fut.set_result(False)
                return
            except Exception:
                log.exception("deepgram: sending %s failed", kind)
                if fut is not None and not fut.done():
                    fut.set_result(False)
                continue
            last_sent = loop.time()
            if fut is not None and not fut.done():
                fut.set_result(True)

    async def _write_message(self, message: Any) -> None:
        if isinstance(message, dict):
            await self._socket.send_raw(message)
            return
        method = getattr(self._socket, _SEND_METHODS.get(message.type, ""), None)
        if method is not None:
            await method(message)
        else:
            await self._socket.send_raw(message.dict())

    # -- server messages --------------------------------------------------------
    def _handle(self, msg: Any) -> None:
        if isinstance(msg, dict):
            data, model = msg, None
        else:
            data, model = msg.dict(), msg
        kind = data.get("type")
        if kind == "Welcome":
            self.request_id = str(data.get("request_id") or "")
        elif kind == "SettingsApplied":
            self.settings_applied.set()
            self._wakeup.set()
        elif kind == "UserStartedSpeaking":
            if self.barge_in:
                self.clear_media_buffer()
        elif kind == "Error":
            log.warning("deepgram: server error code=%s: %s",
                        data.get("code"), data.get("description"))
        elif kind == "Warning":
            log.info("deepgram: server warning code=%s: %s",
                     data.get("code"), data.get("description"))
        name = event_name(kind if isinstance(kind, str) else None)
        if model is not None and name == VoiceAgentEvents.Unknown:
            model = None
        self.dispatch(name, data=data, message=model, client=self)
        if kind == "FunctionCallRequest":
            for fn in data.get("functions") or ():
                if not isinstance(fn, dict) or not fn.get("client_side", True):
                    continue  # server-side functions are run by Deepgram itself
                call_id, fname = str(fn.get("id") or ""), str(fn.get("name") or "")
                self._calls[call_id] = fname
                self._dispatch_tool_call(fname, call_id, fn.get("arguments"), data)

    def _on_agent_audio(self, audio: bytes) -> None:
        fmt = self.output_format
        if self._closed or fmt is None or not audio:
            return
        if fmt.encoding == Encoding.PCM16:  # keep sample alignment across frames
            audio = self._carry + audio
            cut = len(audio) - len(audio) % 2
            audio, self._carry = audio[:cut], audio[cut:]
            if not audio:
                return
        self._emit(AudioFrame(audio, fmt))

    def clear_media_buffer(self) -> None:
        """Drop the agent audio queued for playout in every sink (barge-in).

        Called automatically on ``UserStartedSpeaking`` when ``barge_in`` is on,
        before scenario handlers run. Deepgram stops the interrupted answer itself.
        """
        self._carry = b""
        super().clear_media_buffer()

    # -- media in ---------------------------------------------------------------
    def choose_formats(self, source_format: AudioFormat | None,
                       ) -> tuple[AudioFormat, AudioFormat]:
        """As :meth:`VoiceAIClient.choose_formats` until Settings went out; then the
        formats sent (Deepgram cannot change them within a session)."""
        if self._settings_sent:
            assert self.input_format is not None and self.output_format is not None
            return self.input_format, self.output_format
        return super().choose_formats(source_format)

    def _source_attached(self, source: Any) -> None:
        super()._source_attached(source)
        if not self._closed and not self._settings_sent:
            self.send_settings()

    def _apply_formats(self, fmt: AudioFormat) -> None:
        # Settings not sent yet (formats are pinned afterwards): audio queued so far
        # is in the old format and was never sent, drop it.
        self._pending.clear()
        self._carry = b""
        kept = [e for e in self._out if e[0] != _AUDIO]
        self._out.clear()
        self._out.extend(kept)
        self._audio_entries = 0
        log.info("deepgram: audio formats in=%s out=%s", fmt, self.output_format)

    def _on_media(self, frame: AudioFrame) -> None:
        if self._closed:
            return
        self._pending += frame.data
        fmt = self.input_format
        if fmt is not None and len(self._pending) >= fmt.frame_bytes(self._min_chunk_ms):
            self._flush_pending()

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        data = bytes(self._pending)
        self._pending.clear()
        if self._audio_entries >= self._max_audio_entries:
            self._drop_oldest_audio()
        self._out.append((_AUDIO, data, None))
        self._audio_entries += 1
        self._wakeup.set()

    def _drop_oldest_audio(self) -> None:
        for i, (kind, payload, _) in enumerate(self._out):
            if kind == _AUDIO:
                del self._out[i]
                self._audio_entries -= 1
                if self.input_format is not None:
                    if not self.dropped_audio_ms:
                        log.warning("deepgram: send queue full, dropping caller audio")
                    self.dropped_audio_ms += self.input_format.duration_ms(len(payload))
                return

    # -- client messages --------------------------------------------------------
    def send_settings(self) -> asyncio.Future[bool]:
        """Send ``Settings`` for the current formats now (once; later calls: no-op).

        Normally automatic (first source, or ``settings_delay``). Queued ahead of
        any audio; audio is held until ``SettingsApplied``.
        """
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._settings_sent or self._closed:
            fut.set_result(False)
            return fut
        self._settings_sent = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        assert self.input_format is not None and self.output_format is not None
        body = build_settings(self.input_format, self.output_format, **self._settings_args)
        model = validate_settings(body)
        self.settings = body
        self._out.appendleft((_SETTINGS, model, fut))
        self._wakeup.set()
        return fut

    def send_message(self, message: Any) -> asyncio.Future[bool]:
        """Queue a client message (an SDK model or a dict with ``type``) after queued audio.

        A dict whose ``type`` the SDK types is validated into that type first.
        """
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        kind = message.get("type") if isinstance(message, dict) else getattr(message, "type", "")
        if self._closed:
            log.warning("deepgram: %s ignored, the client is closed", kind)
            fut.set_result(False)
            return fut
        if isinstance(message, dict):
            message = _typed(message)
        self._flush_pending()
        self._out.append((_MESSAGE, message, fut))
        self._wakeup.set()
        return fut

    def send_tool_result(self, call_id: str, result: Any) -> asyncio.Future[bool]:
        """Answer a client-side function call with ``FunctionCallResponse {id, name, content}``.

        Args:
            call_id: ``call_id`` of the ``VoiceAIEvents.ToolCall`` event (the
                ``FunctionCallRequest`` function ``id``).
            result: the output; a str is sent as is, anything else as JSON.
        """
        from connectors.deepgram._sdk import AgentV1SendFunctionCallResponse

        name = self._calls.pop(str(call_id), None)
        if name is None:
            log.warning("deepgram: send_tool_result for unknown call id %r", call_id)
            name = ""
        content = result if isinstance(result, str) else json.dumps(result)
        return self.send_message(AgentV1SendFunctionCallResponse(
            type="FunctionCallResponse", id=str(call_id), name=name, content=content))

    def update_prompt(self, prompt: str) -> asyncio.Future[bool]:
        """Send ``UpdatePrompt`` (answered by ``PromptUpdated``)."""
        return self.send_message({"type": "UpdatePrompt", "prompt": prompt})

    def update_speak(self, speak: dict[str, Any]) -> asyncio.Future[bool]:
        """Send ``UpdateSpeak`` with a new speak provider (answered by ``SpeakUpdated``)."""
        return self.send_message({"type": "UpdateSpeak", "speak": speak})

    def inject_agent_message(self, message: str) -> asyncio.Future[bool]:
        """Send ``InjectAgentMessage``: make the agent say ``message`` now."""
        return self.send_message({"type": "InjectAgentMessage", "message": message})

    def inject_user_message(self, content: str) -> asyncio.Future[bool]:
        """Send ``InjectUserMessage``: a text user turn."""
        return self.send_message({"type": "InjectUserMessage", "content": content})

    def keep_alive(self) -> asyncio.Future[bool]:
        """Send ``KeepAlive`` (automatic after ``keepalive_interval`` idle seconds)."""
        return self.send_message({"type": "KeepAlive"})


def _typed(message: dict[str, Any]) -> Any:
    """``message`` as the SDK's client message type for its ``type`` (dict if untyped).

    Raises:
        ValueError: it does not validate against that type.
    """
    import pydantic

    from connectors.deepgram import _sdk

    classes = {
        "UpdatePrompt": "AgentV1UpdatePrompt", "UpdateSpeak": "AgentV1UpdateSpeak",
        "UpdateThink": "AgentV1UpdateThink", "UpdateListen": "AgentV1UpdateListen",
        "InjectAgentMessage": "AgentV1InjectAgentMessage",
        "InjectUserMessage": "AgentV1InjectUserMessage", "KeepAlive": "AgentV1KeepAlive",
        "FunctionCallResponse": "AgentV1SendFunctionCallResponse",
        "ForceEndTurn": "AgentV1ForceEndTurn", "Settings": "AgentV1Settings",
    }
    name = classes.get(str(message.get("type")))
    if name is None:
        return message
    cls = getattr(_sdk.types, name)
    try:
        return cls.model_validate(message)
    except pydantic.ValidationError as exc:
        raise ValueError(f"deepgram: invalid {message.get('type')}: {exc}") from None
