"""Deepgram Voice Agent server messages mapped to scenario event constants.

Follows the server message ``type`` strings of the Voice Agent API
(``wss://agent.deepgram.com/v1/agent/converse``) as typed by the official
``deepgram-sdk`` (``deepgram.agent.v1.socket_client.V1SocketClientResponse``).
Every event a :class:`~connectors.deepgram.client.VoiceAgentClient` dispatches
carries the vendor JSON as ``event.data`` (a dict), the SDK's typed message as
``event.message`` (None for unknown types) and the client as ``event.client``.
"""

from __future__ import annotations

from connectors.base import VoiceAIEvents

_PREFIX = "Deepgram.VoiceAgentEvents."


class VoiceAgentEvents:
    """Event names a Voice Agent client dispatches (``Deepgram.VoiceAgentEvents``)."""

    Welcome = _PREFIX + "Welcome"
    SettingsApplied = _PREFIX + "SettingsApplied"
    ConversationText = _PREFIX + "ConversationText"
    UserStartedSpeaking = _PREFIX + "UserStartedSpeaking"
    AgentThinking = _PREFIX + "AgentThinking"
    AgentStartedSpeaking = _PREFIX + "AgentStartedSpeaking"
    AgentAudioDone = _PREFIX + "AgentAudioDone"
    FunctionCallRequest = _PREFIX + "FunctionCallRequest"
    #: A server-side function's result (``client_side: false``), sent by Deepgram.
    FunctionCallResponse = _PREFIX + "FunctionCallResponse"
    FunctionCallCancelled = _PREFIX + "FunctionCallCancelled"
    PromptUpdated = _PREFIX + "PromptUpdated"
    SpeakUpdated = _PREFIX + "SpeakUpdated"
    ThinkUpdated = _PREFIX + "ThinkUpdated"
    ThinkLiveUpdated = _PREFIX + "ThinkLiveUpdated"
    ListenUpdated = _PREFIX + "ListenUpdated"
    InjectionRefused = _PREFIX + "InjectionRefused"
    LatencyReport = _PREFIX + "LatencyReport"
    History = _PREFIX + "History"
    FrustrationDetected = _PREFIX + "FrustrationDetected"
    CustomFromThinkProvider = _PREFIX + "CustomFromThinkProvider"
    Warning = _PREFIX + "Warning"
    Error = _PREFIX + "Error"
    # connector-side events
    #: A client-side function call (one per ``client_side`` function of a
    #: ``FunctionCallRequest``); payload ``name``, ``call_id``, ``arguments``.
    ToolCall = VoiceAIEvents.ToolCall
    #: One user turn answered, with the latency figures the vendor exposes (the
    #: connector module says which); also kept in the session CDR.
    TurnLatency = VoiceAIEvents.TurnLatency
    #: The WebSocket closed (by either side); payload ``code`` and ``reason``.
    WebSocketClosed = VoiceAIEvents.WebSocketClosed
    #: A server message whose ``type`` is not in :data:`SERVER_EVENT_MAP`.
    Unknown = _PREFIX + "Unknown"


E = VoiceAgentEvents

#: Server message ``type`` -> :class:`VoiceAgentEvents` constant.
SERVER_EVENT_MAP: dict[str, str] = {
    "Welcome": E.Welcome,
    "SettingsApplied": E.SettingsApplied,
    "ConversationText": E.ConversationText,
    "UserStartedSpeaking": E.UserStartedSpeaking,
    "AgentThinking": E.AgentThinking,
    "AgentStartedSpeaking": E.AgentStartedSpeaking,
    "AgentAudioDone": E.AgentAudioDone,
    "FunctionCallRequest": E.FunctionCallRequest,
    "FunctionCallResponse": E.FunctionCallResponse,
    "FunctionCallCancelled": E.FunctionCallCancelled,
    "PromptUpdated": E.PromptUpdated,
    "SpeakUpdated": E.SpeakUpdated,
    "ThinkUpdated": E.ThinkUpdated,
    "ThinkLiveUpdated": E.ThinkLiveUpdated,
    "ListenUpdated": E.ListenUpdated,
    "InjectionRefused": E.InjectionRefused,
    "LatencyReport": E.LatencyReport,
    "History": E.History,
    "FrustrationDetected": E.FrustrationDetected,
    "__customFromThinkProvider": E.CustomFromThinkProvider,
    "Warning": E.Warning,
    "Error": E.Error,
}


def event_name(server_type: str | None) -> str:
    """The :class:`VoiceAgentEvents` constant for a server message ``type`` (or Unknown)."""
    if not server_type:
        return E.Unknown
    return SERVER_EVENT_MAP.get(server_type, E.Unknown)
