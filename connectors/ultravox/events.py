"""Ultravox WebSocket data messages mapped to scenario event constants.

Follows the Ultravox data message protocol (https://docs.ultravox.ai/apps/datamessages)
for a ``serverWebSocket`` call: audio travels as binary frames, data messages as
JSON text frames with a ``type``. Server messages mapped here: ``call_started``,
``state``, ``transcript``, ``client_tool_invocation``, ``playback_clear_buffer``,
``debug``, ``pong``.

Constants follow VoxEngine's ``Ultravox.WebSocketAPIEvents.X`` spelling. Every event
a :class:`~connectors.ultravox.client.WebSocketAPIClient` dispatches carries the
vendor JSON as ``event.data`` (a dict) and the client as ``event.client``.
"""

from __future__ import annotations

from connectors.base import VoiceAIEvents

_PREFIX = "Ultravox.WebSocketAPIEvents."


class WebSocketAPIEvents:
    """Event names an Ultravox WebSocket API client dispatches."""

    #: ``call_started`` {callId}.
    CallStarted = _PREFIX + "CallStarted"
    #: ``state`` {state}: "idle", "listening", "thinking", "speaking" ...
    State = _PREFIX + "State"
    #: ``transcript`` {role, medium, text | delta, final, ordinal}.
    Transcript = _PREFIX + "Transcript"
    #: ``client_tool_invocation`` {toolName, invocationId, parameters}; also
    #: dispatched as :attr:`ToolCall`.
    ClientToolInvocation = _PREFIX + "ClientToolInvocation"
    #: ``playback_clear_buffer``: the user barged in; sinks' playout is cleared first.
    PlaybackClearBuffer = _PREFIX + "PlaybackClearBuffer"
    #: ``debug`` {message} (only when the call asks for debug messages).
    Debug = _PREFIX + "Debug"
    #: ``pong`` {timestamp}, the answer to :meth:`WebSocketAPIClient.ping`.
    Pong = _PREFIX + "Pong"
    #: Connector-side: a text frame the client cannot read (malformed JSON, not an
    #: object); ``data`` holds ``{"type": "error", "message": ..., "raw": <first 200
    #: chars>}``. ``VoiceAIEvents.Error`` follows with the same ``message``.
    Error = _PREFIX + "Error"
    #: A data message whose ``type`` is not in :data:`SERVER_EVENT_MAP`.
    Unknown = _PREFIX + "Unknown"
    #: The common tool-call event (``name``, ``call_id``, ``arguments``).
    ToolCall = VoiceAIEvents.ToolCall
    #: One user turn answered, with the latency figures the vendor exposes (the
    #: connector module says which); also kept in the session CDR.
    TurnLatency = VoiceAIEvents.TurnLatency
    #: The WebSocket closed (by either side); payload ``code`` and ``reason``.
    WebSocketClosed = VoiceAIEvents.WebSocketClosed


E = WebSocketAPIEvents

#: Server data message ``type`` -> :class:`WebSocketAPIEvents` constant.
SERVER_EVENT_MAP: dict[str, str] = {
    "call_started": E.CallStarted,
    "state": E.State,
    "transcript": E.Transcript,
    "client_tool_invocation": E.ClientToolInvocation,
    "playback_clear_buffer": E.PlaybackClearBuffer,
    "debug": E.Debug,
    "pong": E.Pong,
}


def event_name(server_type: str | None) -> str:
    """The :class:`WebSocketAPIEvents` constant for a server data message ``type``."""
    if not server_type:
        return E.Unknown
    return SERVER_EVENT_MAP.get(server_type, E.Unknown)
