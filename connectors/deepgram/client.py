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

Per-turn latency (``VoiceAIEvents.TurnLatency``, also in the session CDR): Deepgram
measures the turn itself and reports it in ``AgentStartedSpeaking`` (seconds,
converted to ms): ``total_latency`` (user utterance end -> the agent's first audio)
is ``speech_end_to_audio_ms``, ``ttt_latency`` (the text-to-text, LLM, part) is
``llm_first_token_ms``, ``tts_latency`` is ``tts_first_byte_ms``. One record per
user turn: the first ``AgentStartedSpeaking`` after a ``UserStartedSpeaking``
(the greeting, ``InjectAgentMessage`` and further answers without new user speech
are not user turns). ``stt_ms`` comes from the ``stt_latency`` of Deepgram's
``LatencyReport``: a report that arrives while the turn is still unanswered is
folded into the event; one that arrives after ``AgentStartedSpeaking`` completes
the turn's CDR record (the event already went out with ``stt_ms`` None).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from connectors.base import Capabilities, QueuedVoiceAIClient, frame_excerpt
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


class VoiceAgentClient(QueuedVoiceAIClient):
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

    Errors: a server ``Error`` message (after ``VoiceAgentEvents.Error``) and a text
    frame the client cannot read (malformed JSON, not an object, a shape it cannot
    follow) dispatch ``VoiceAIEvents.Error`` with a precise ``message``; reading goes on.

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
        super().__init__(owner, on_websocket_closed=on_websocket_closed,
                         max_queued_audio_ms=max_queued_audio_ms, min_chunk_ms=min_chunk_ms)
        self._socket = socket
        self._closer = closer
        self._settings_args = dict(settings_args or {})
        self.barge_in = barge_in
        self.settings_delay = settings_delay
        self.keepalive_interval = keepalive_interval
        self._carry = b""
        self._last_sent = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._calls: dict[str, str] = {}
        self._settings_sent = False
        #: Set once the server sent ``SettingsApplied``.
        self.settings_applied = asyncio.Event()
        #: The ``Settings`` message sent (a dict), once sent.
        self.settings: dict[str, Any] | None = None
        #: ``request_id`` of the server's ``Welcome``.
        self.request_id: str = ""
        #: The user spoke (``UserStartedSpeaking``) and the agent has not answered yet.
        self._user_turn = False
        #: ``stt_latency`` (s) of a ``LatencyReport`` for the unanswered user turn.
        self._turn_stt: float | None = None
        #: The CDR record of the last reported turn while its ``stt_ms`` is unknown.
        self._stt_missing: dict[str, Any] | None = None
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
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        self._start_tasks(self._read_loop(list(early or ())))
        if not self._settings_sent:
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

    async def _close_transport(self, already: bool) -> None:
        if not already:
            await self._close_socket()

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
        super()._cancel_sender()

    # -- tasks ------------------------------------------------------------------
    async def _read_loop(self, early: list[Any]) -> None:
        await self._guard_reader(lambda: self._receive(early))

    async def _receive(self, early: list[Any]) -> None:
        for msg in early:
            self._handle(msg)
        while True:
            try:
                msg = await self._socket.recv()
            except ValueError as exc:  # the SDK's json.loads: the frame is exc.doc
                self._malformed(getattr(exc, "doc", ""), str(exc))
                continue
            if isinstance(msg, bytes | bytearray):
                self._on_agent_audio(bytes(msg))
                continue
            if not isinstance(msg, dict) and not callable(getattr(msg, "dict", None)):
                # The SDK hands back any JSON it cannot type as is: a list, a number ...
                self._malformed(json.dumps(msg, default=repr),
                                "not a JSON object")
                continue
            try:
                self._handle(msg)
            except Exception as exc:  # a shape the handling cannot follow
                log.debug("deepgram: handling %r failed", msg, exc_info=True)
                self._malformed(repr(msg), f"{type(exc).__name__}: {exc}", "message")


    async def _reader_finished(self) -> None:
        if self._closer is not None:
            await self._close_socket()

    def _sender_ready(self) -> bool:
        # Audio waits for SettingsApplied; Settings themselves go first.
        return bool(self._out) and (self.settings_applied.is_set()
                                    or self._out[0][0] == _SETTINGS)

    async def _idle(self) -> bool:
        from websockets.exceptions import ConnectionClosed

        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self._wakeup.wait(), self.keepalive_interval)
        except TimeoutError:
            if (self.settings_applied.is_set()
                    and loop.time() - self._last_sent >= self.keepalive_interval):
                try:
                    await self._socket.send_keep_alive()
                except ConnectionClosed:
                    return False
                self._last_sent = loop.time()
        return True

    def _after_write(self) -> None:
        self._last_sent = asyncio.get_running_loop().time()

    def _describe(self, kind: str, payload: Any) -> Any:
        return kind

    async def _write_audio(self, data: bytes) -> None:
        await self._socket.send_media(data)

    async def _write_event(self, kind: str, payload: Any) -> None:
        await self._write_message(payload)

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
            self._user_turn = True
            if self.barge_in:
                self.clear_media_buffer()
        elif kind == "AgentStartedSpeaking":
            if self._user_turn:
                self._report_turn(data)
        elif kind == "LatencyReport":
            self._on_latency_report(data)
        elif kind == "Warning":
            log.info("deepgram: server warning code=%s: %s",
                     data.get("code"), data.get("description"))
        name = event_name(kind if isinstance(kind, str) else None)
        if model is not None and name == VoiceAgentEvents.Unknown:
            model = None
        self.dispatch(name, data=data, message=model, client=self)
        if kind == "Error":
            code = data.get("code")
            what = (data.get("description") or data.get("message")
                    or frame_excerpt(json.dumps(data)))
            self._dispatch_error(
                f"deepgram reported an error{f' ({code})' if code else ''}: {what}", data)
        if kind == "FunctionCallRequest":
            for fn in data.get("functions") or ():
                if not isinstance(fn, dict) or not fn.get("client_side", True):
                    continue  # server-side functions are run by Deepgram itself
                call_id, fname = str(fn.get("id") or ""), str(fn.get("name") or "")
                self._calls[call_id] = fname
                self._dispatch_tool_call(fname, call_id, fn.get("arguments"), data)

    def _report_turn(self, data: dict[str, Any]) -> None:
        """``AgentStartedSpeaking`` answering a user turn: ``TurnLatency`` from its
        figures (seconds) and any ``LatencyReport`` STT figure seen for the turn."""
        stt, self._turn_stt = self._turn_stt, None
        self._user_turn = False
        record = self._report_turn_latency(
            speech_end_to_audio_ms=_ms(data.get("total_latency")),
            stt_ms=_ms(stt),
            llm_first_token_ms=_ms(data.get("ttt_latency")),
            tts_first_byte_ms=_ms(data.get("tts_latency")))
        self._stt_missing = record if record["stt_ms"] is None else None

    def _on_latency_report(self, data: dict[str, Any]) -> None:
        """``LatencyReport``: its ``stt_latency`` belongs to the last reported turn
        when that turn's STT figure is missing, else to the unanswered one."""
        stt = data.get("stt_latency")
        if _ms(stt) is None:
            return
        record, self._stt_missing = self._stt_missing, None
        if record is not None:
            record["stt_ms"] = round(float(stt) * 1000.0, 1)
        elif self._user_turn:
            self._turn_stt = float(stt)

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
        self._clear_queued_audio()
        self._carry = b""
        log.info("deepgram: audio formats in=%s out=%s", fmt, self.output_format)

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
        kind = message.get("type") if isinstance(message, dict) else getattr(message, "type", "")
        if not self._closed and isinstance(message, dict):
            message = _typed(message)
        return self._queue(_MESSAGE, message, kind)

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


def _ms(seconds: Any) -> float | None:
    """A Deepgram latency figure (seconds) in ms, None when absent or not a number."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    return float(seconds) * 1000.0


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
