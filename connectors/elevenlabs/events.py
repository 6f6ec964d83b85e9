"""ElevenLabs Agents (Conversational AI) server messages mapped to scenario events.

Server message ``type`` strings of the ``/v1/convai/conversation`` WebSocket, as
handled by the official SDK (``elevenlabs.conversational_ai.conversation``):
``conversation_initiation_metadata``, ``audio``, ``interruption``, ``ping``,
``client_tool_call``, ``user_transcript``, ``agent_response``,
``agent_response_correction``, ``agent_chat_response_part``; and those the SDK
ignores but the server sends: ``vad_score``, ``internal_tentative_agent_response``,
``agent_tool_response``, ``mcp_tool_call``, ``mcp_connection_status``,
``contextual_update``, ``error``.

Constants follow VoxEngine's ``ElevenLabs.AgentsEvents.X`` spelling. Every event an
:class:`~connectors.elevenlabs.client.AgentsClient` dispatches carries the vendor
JSON as ``event.data`` (a dict) and the client as ``event.client``.
"""

from __future__ import annotations

from connectors.base import VoiceAIEvents

_PREFIX = "ElevenLabs.AgentsEvents."


class AgentsEvents:
    """Event names an Agents client dispatches (``ElevenLabs.AgentsEvents``)."""

    ConversationInitiationMetadata = _PREFIX + "ConversationInitiationMetadata"
    UserTranscript = _PREFIX + "UserTranscript"
    AgentResponse = _PREFIX + "AgentResponse"
    AgentResponseCorrection = _PREFIX + "AgentResponseCorrection"
    AgentChatResponsePart = _PREFIX + "AgentChatResponsePart"
    #: Agent audio (already played to the sinks when handlers run).
    Audio = _PREFIX + "Audio"
    #: The user barged in; the sinks' playout was cleared before handlers run.
    Interruption = _PREFIX + "Interruption"
    #: Keep-alive; the client answers ``pong`` itself.
    Ping = _PREFIX + "Ping"
    #: The agent calls a client tool (vendor view; :attr:`ToolCall` fires as well).
    ClientToolCall = _PREFIX + "ClientToolCall"
    AgentToolResponse = _PREFIX + "AgentToolResponse"
    McpToolCall = _PREFIX + "McpToolCall"
    McpConnectionStatus = _PREFIX + "McpConnectionStatus"
    VadScore = _PREFIX + "VadScore"
    InternalTentativeAgentResponse = _PREFIX + "InternalTentativeAgentResponse"
    ContextualUpdate = _PREFIX + "ContextualUpdate"
    Error = _PREFIX + "Error"
    # connector-side events
    ToolCall = VoiceAIEvents.ToolCall
    #: One user turn answered, with the latency figures the vendor exposes (the
    #: connector module says which); also kept in the session CDR.
    TurnLatency = VoiceAIEvents.TurnLatency
    WebSocketClosed = VoiceAIEvents.WebSocketClosed
    #: A server message whose ``type`` is not in :data:`SERVER_EVENT_MAP`.
    Unknown = _PREFIX + "Unknown"


E = AgentsEvents

#: Server message ``type`` -> :class:`AgentsEvents` constant.
SERVER_EVENT_MAP: dict[str, str] = {
    "conversation_initiation_metadata": E.ConversationInitiationMetadata,
    "user_transcript": E.UserTranscript,
    "agent_response": E.AgentResponse,
    "agent_response_correction": E.AgentResponseCorrection,
    "agent_chat_response_part": E.AgentChatResponsePart,
    "audio": E.Audio,
    "interruption": E.Interruption,
    "ping": E.Ping,
    "client_tool_call": E.ClientToolCall,
    "agent_tool_response": E.AgentToolResponse,
    "mcp_tool_call": E.McpToolCall,
    "mcp_connection_status": E.McpConnectionStatus,
    "vad_score": E.VadScore,
    "internal_tentative_agent_response": E.InternalTentativeAgentResponse,
    "contextual_update": E.ContextualUpdate,
    "error": E.Error,
}


def event_name(server_type: str | None) -> str:
    """The :class:`AgentsEvents` constant for a server message ``type`` (else ``Unknown``)."""
    if not server_type:
        return E.Unknown
    return SERVER_EVENT_MAP.get(server_type, E.Unknown)
