"""Gemini Live API server messages mapped to scenario event constants.

A ``BidiGenerateContentServerMessage`` (typed by the official SDK as
``google.genai.types.LiveServerMessage``) carries one of ``setupComplete``,
``serverContent``, ``toolCall``, ``toolCallCancellation``, ``goAway``,
``sessionResumptionUpdate``, ``usageMetadata``, ``voiceActivityDetectionSignal``
or ``voiceActivity``. Each becomes one :class:`LiveAPIEvents` constant; the parts
of ``serverContent`` that matter to a call (``interrupted``, ``turnComplete``,
``generationComplete``, the transcriptions) are dispatched as their own events
after ``ServerContent``. Every event carries the vendor JSON (camelCase, as on
the wire) as ``event.data`` and the client as ``event.client``.
"""

from __future__ import annotations

from typing import Any

from connectors.base import VoiceAIEvents

_PREFIX = "Gemini.LiveAPIEvents."


class LiveAPIEvents:
    """Event names a Gemini Live client dispatches (``Gemini.LiveAPIEvents``)."""

    #: ``setupComplete``: the session is configured (dispatched first).
    SetupComplete = _PREFIX + "SetupComplete"
    #: every ``serverContent`` message (model audio/text, flags, transcriptions).
    ServerContent = _PREFIX + "ServerContent"
    #: ``serverContent.interrupted``: the user barged in; playout was already cleared.
    Interrupted = _PREFIX + "Interrupted"
    #: ``serverContent.turnComplete``: the model finished its turn.
    TurnComplete = _PREFIX + "TurnComplete"
    #: ``serverContent.generationComplete``: the model finished generating.
    GenerationComplete = _PREFIX + "GenerationComplete"
    #: ``serverContent.inputTranscription``: payload ``text``, ``finished``.
    InputTranscription = _PREFIX + "InputTranscription"
    #: ``serverContent.outputTranscription``: payload ``text``, ``finished``.
    OutputTranscription = _PREFIX + "OutputTranscription"
    #: ``toolCall``: one ``VoiceAIEvents.ToolCall`` per function call.
    ToolCall = VoiceAIEvents.ToolCall
    #: One user turn answered, with the latency figures the vendor exposes (the
    #: connector module says which); also kept in the session CDR.
    TurnLatency = VoiceAIEvents.TurnLatency
    #: ``toolCallCancellation``: payload ``ids`` (the cancelled call ids).
    ToolCallCancellation = _PREFIX + "ToolCallCancellation"
    #: ``goAway``: the server will close soon; payload ``time_left`` (e.g. ``"10s"``).
    GoAway = _PREFIX + "GoAway"
    SessionResumptionUpdate = _PREFIX + "SessionResumptionUpdate"
    UsageMetadata = _PREFIX + "UsageMetadata"
    VoiceActivityDetectionSignal = _PREFIX + "VoiceActivityDetectionSignal"
    VoiceActivity = _PREFIX + "VoiceActivity"
    #: a message the SDK could not parse, or an error body; payload ``message``.
    Error = _PREFIX + "Error"
    #: The WebSocket closed (by either side); payload ``code`` and ``reason``.
    WebSocketClosed = VoiceAIEvents.WebSocketClosed
    #: A server message with none of the known fields.
    Unknown = _PREFIX + "Unknown"


E = LiveAPIEvents

#: Top-level ``LiveServerMessage`` field (camelCase, as on the wire) -> event constant,
#: in the order a message's events are dispatched.
SERVER_MESSAGE_MAP: dict[str, str] = {
    "setupComplete": E.SetupComplete,
    "serverContent": E.ServerContent,
    "toolCall": E.ToolCall,
    "toolCallCancellation": E.ToolCallCancellation,
    "goAway": E.GoAway,
    "sessionResumptionUpdate": E.SessionResumptionUpdate,
    "usageMetadata": E.UsageMetadata,
    "voiceActivityDetectionSignal": E.VoiceActivityDetectionSignal,
    "voiceActivity": E.VoiceActivity,
}


def message_events(data: dict[str, Any]) -> list[str]:
    """The event constants one server message (wire JSON, camelCase) maps to, in order.

    ``serverContent`` adds ``Interrupted``, ``InputTranscription``,
    ``OutputTranscription``, ``GenerationComplete`` and ``TurnComplete`` after
    ``ServerContent`` when those fields are set. ``toolCall`` maps to
    ``VoiceAIEvents.ToolCall`` (the client fires it once per function call). A
    message with no known field maps to ``[Unknown]``.
    """
    names: list[str] = []
    for key, name in SERVER_MESSAGE_MAP.items():
        if data.get(key) is None:
            continue
        names.append(name)
        if key == "serverContent":
            content = data[key] if isinstance(data[key], dict) else {}
            if content.get("interrupted"):
                names.append(E.Interrupted)
            if content.get("inputTranscription") is not None:
                names.append(E.InputTranscription)
            if content.get("outputTranscription") is not None:
                names.append(E.OutputTranscription)
            if content.get("generationComplete"):
                names.append(E.GenerationComplete)
            if content.get("turnComplete"):
                names.append(E.TurnComplete)
    return names or [E.Unknown]
