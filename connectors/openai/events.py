"""OpenAI Realtime API (GA) server events mapped to scenario event constants.

Follows the GA server event ``type`` strings of the OpenAI Realtime API as typed
in the official SDK (``openai.types.realtime.RealtimeServerEvent``):
``session.created``, ``response.output_audio.delta``, ... The beta names
(``response.audio.delta``, ``response.text.delta``) are not mapped: the beta
protocol is switched off server-side.

Constants follow VoxEngine's ``OpenAI.RealtimeAPIEvents.X`` spelling. Every event
a :class:`~connectors.openai.client.RealtimeAPIClient` dispatches carries the
vendor JSON as ``event.data`` (a dict) and the client as ``event.client``.
"""

from __future__ import annotations

from connectors.base import VoiceAIEvents

_PREFIX = "OpenAI.RealtimeAPIEvents."


class RealtimeAPIEvents:
    """Event names a Realtime API client dispatches (``OpenAI.RealtimeAPIEvents``)."""

    # session / conversation
    SessionCreated = _PREFIX + "SessionCreated"
    SessionUpdated = _PREFIX + "SessionUpdated"
    ConversationCreated = _PREFIX + "ConversationCreated"
    ConversationItemCreated = _PREFIX + "ConversationItemCreated"
    ConversationItemAdded = _PREFIX + "ConversationItemAdded"
    ConversationItemDone = _PREFIX + "ConversationItemDone"
    ConversationItemDeleted = _PREFIX + "ConversationItemDeleted"
    ConversationItemRetrieved = _PREFIX + "ConversationItemRetrieved"
    ConversationItemTruncated = _PREFIX + "ConversationItemTruncated"
    ConversationItemInputAudioTranscriptionCompleted = (
        _PREFIX + "ConversationItemInputAudioTranscriptionCompleted"
    )
    ConversationItemInputAudioTranscriptionDelta = (
        _PREFIX + "ConversationItemInputAudioTranscriptionDelta"
    )
    ConversationItemInputAudioTranscriptionFailed = (
        _PREFIX + "ConversationItemInputAudioTranscriptionFailed"
    )
    ConversationItemInputAudioTranscriptionSegment = (
        _PREFIX + "ConversationItemInputAudioTranscriptionSegment"
    )
    # input audio buffer
    InputAudioBufferCommitted = _PREFIX + "InputAudioBufferCommitted"
    InputAudioBufferCleared = _PREFIX + "InputAudioBufferCleared"
    InputAudioBufferSpeechStarted = _PREFIX + "InputAudioBufferSpeechStarted"
    InputAudioBufferSpeechStopped = _PREFIX + "InputAudioBufferSpeechStopped"
    InputAudioBufferTimeoutTriggered = _PREFIX + "InputAudioBufferTimeoutTriggered"
    InputAudioBufferDtmfEventReceived = _PREFIX + "InputAudioBufferDtmfEventReceived"
    # output audio buffer (WebRTC/SIP only, mapped for completeness)
    OutputAudioBufferStarted = _PREFIX + "OutputAudioBufferStarted"
    OutputAudioBufferStopped = _PREFIX + "OutputAudioBufferStopped"
    OutputAudioBufferCleared = _PREFIX + "OutputAudioBufferCleared"
    # responses
    ResponseCreated = _PREFIX + "ResponseCreated"
    ResponseDone = _PREFIX + "ResponseDone"
    ResponseOutputItemAdded = _PREFIX + "ResponseOutputItemAdded"
    ResponseOutputItemDone = _PREFIX + "ResponseOutputItemDone"
    ResponseContentPartAdded = _PREFIX + "ResponseContentPartAdded"
    ResponseContentPartDone = _PREFIX + "ResponseContentPartDone"
    ResponseOutputTextDelta = _PREFIX + "ResponseOutputTextDelta"
    ResponseOutputTextDone = _PREFIX + "ResponseOutputTextDone"
    ResponseOutputAudioDelta = _PREFIX + "ResponseOutputAudioDelta"
    ResponseOutputAudioDone = _PREFIX + "ResponseOutputAudioDone"
    ResponseOutputAudioTranscriptDelta = _PREFIX + "ResponseOutputAudioTranscriptDelta"
    ResponseOutputAudioTranscriptDone = _PREFIX + "ResponseOutputAudioTranscriptDone"
    ResponseFunctionCallArgumentsDelta = _PREFIX + "ResponseFunctionCallArgumentsDelta"
    ResponseFunctionCallArgumentsDone = _PREFIX + "ResponseFunctionCallArgumentsDone"
    ResponseMCPCallArgumentsDelta = _PREFIX + "ResponseMCPCallArgumentsDelta"
    ResponseMCPCallArgumentsDone = _PREFIX + "ResponseMCPCallArgumentsDone"
    ResponseMCPCallInProgress = _PREFIX + "ResponseMCPCallInProgress"
    ResponseMCPCallCompleted = _PREFIX + "ResponseMCPCallCompleted"
    ResponseMCPCallFailed = _PREFIX + "ResponseMCPCallFailed"
    MCPListToolsInProgress = _PREFIX + "MCPListToolsInProgress"
    MCPListToolsCompleted = _PREFIX + "MCPListToolsCompleted"
    MCPListToolsFailed = _PREFIX + "MCPListToolsFailed"
    RateLimitsUpdated = _PREFIX + "RateLimitsUpdated"
    Error = _PREFIX + "Error"
    # connector-side events
    #: The WebSocket closed (by either side); payload ``code`` and ``reason``.
    WebSocketClosed = VoiceAIEvents.WebSocketClosed  # the same for every connector
    ToolCall = VoiceAIEvents.ToolCall  # also fired for response.function_call_arguments.done
    #: One user turn answered, with the latency figures the vendor exposes (the
    #: connector module says which); also kept in the session CDR.
    TurnLatency = VoiceAIEvents.TurnLatency
    #: A server event whose ``type`` is not in :data:`SERVER_EVENT_MAP`.
    Unknown = _PREFIX + "Unknown"


E = RealtimeAPIEvents

#: GA server event ``type`` -> :class:`RealtimeAPIEvents` constant.
SERVER_EVENT_MAP: dict[str, str] = {
    "session.created": E.SessionCreated,
    "session.updated": E.SessionUpdated,
    "conversation.created": E.ConversationCreated,
    "conversation.item.created": E.ConversationItemCreated,
    "conversation.item.added": E.ConversationItemAdded,
    "conversation.item.done": E.ConversationItemDone,
    "conversation.item.deleted": E.ConversationItemDeleted,
    "conversation.item.retrieved": E.ConversationItemRetrieved,
    "conversation.item.truncated": E.ConversationItemTruncated,
    "conversation.item.input_audio_transcription.completed":
        E.ConversationItemInputAudioTranscriptionCompleted,
    "conversation.item.input_audio_transcription.delta":
        E.ConversationItemInputAudioTranscriptionDelta,
    "conversation.item.input_audio_transcription.failed":
        E.ConversationItemInputAudioTranscriptionFailed,
    "conversation.item.input_audio_transcription.segment":
        E.ConversationItemInputAudioTranscriptionSegment,
    "input_audio_buffer.committed": E.InputAudioBufferCommitted,
    "input_audio_buffer.cleared": E.InputAudioBufferCleared,
    "input_audio_buffer.speech_started": E.InputAudioBufferSpeechStarted,
    "input_audio_buffer.speech_stopped": E.InputAudioBufferSpeechStopped,
    "input_audio_buffer.timeout_triggered": E.InputAudioBufferTimeoutTriggered,
    "input_audio_buffer.dtmf_event_received": E.InputAudioBufferDtmfEventReceived,
    "output_audio_buffer.started": E.OutputAudioBufferStarted,
    "output_audio_buffer.stopped": E.OutputAudioBufferStopped,
    "output_audio_buffer.cleared": E.OutputAudioBufferCleared,
    "response.created": E.ResponseCreated,
    "response.done": E.ResponseDone,
    "response.output_item.added": E.ResponseOutputItemAdded,
    "response.output_item.done": E.ResponseOutputItemDone,
    "response.content_part.added": E.ResponseContentPartAdded,
    "response.content_part.done": E.ResponseContentPartDone,
    "response.output_text.delta": E.ResponseOutputTextDelta,
    "response.output_text.done": E.ResponseOutputTextDone,
    "response.output_audio.delta": E.ResponseOutputAudioDelta,
    "response.output_audio.done": E.ResponseOutputAudioDone,
    "response.output_audio_transcript.delta": E.ResponseOutputAudioTranscriptDelta,
    "response.output_audio_transcript.done": E.ResponseOutputAudioTranscriptDone,
    "response.function_call_arguments.delta": E.ResponseFunctionCallArgumentsDelta,
    "response.function_call_arguments.done": E.ResponseFunctionCallArgumentsDone,
    "response.mcp_call_arguments.delta": E.ResponseMCPCallArgumentsDelta,
    "response.mcp_call_arguments.done": E.ResponseMCPCallArgumentsDone,
    "response.mcp_call.in_progress": E.ResponseMCPCallInProgress,
    "response.mcp_call.completed": E.ResponseMCPCallCompleted,
    "response.mcp_call.failed": E.ResponseMCPCallFailed,
    "mcp_list_tools.in_progress": E.MCPListToolsInProgress,
    "mcp_list_tools.completed": E.MCPListToolsCompleted,
    "mcp_list_tools.failed": E.MCPListToolsFailed,
    "rate_limits.updated": E.RateLimitsUpdated,
    "error": E.Error,
}


def event_name(server_type: str | None) -> str:
    """The :class:`RealtimeAPIEvents` constant for a GA server event ``type``.

    Unknown or missing types map to :attr:`RealtimeAPIEvents.Unknown`.
    """
    if not server_type:
        return E.Unknown
    return SERVER_EVENT_MAP.get(server_type, E.Unknown)
