"""Event names, spelt as VoxEngine spells them (``AppEvents.Started``, ``CallEvents.Connected``)."""

from __future__ import annotations


class AppEvents:
    """Session-level events (VoxEngine ``AppEvents``)."""

    Started = "AppEvents.Started"
    CallAlerting = "AppEvents.CallAlerting"
    HttpRequest = "AppEvents.HttpRequest"
    Terminating = "AppEvents.Terminating"
    Terminated = "AppEvents.Terminated"


class CallEvents:
    """Call-leg events (VoxEngine ``CallEvents``)."""

    Ringing = "CallEvents.Ringing"
    Connected = "CallEvents.Connected"
    Disconnected = "CallEvents.Disconnected"
    Failed = "CallEvents.Failed"
    ToneReceived = "CallEvents.ToneReceived"
    #: a beep heard while ``enable_beep_detection()`` runs (payload: tone, VoicemailTone,
    #: ProgressTone, frequency, duration)
    ToneDetected = "CallEvents.ToneDetected"
    #: beep detection ended (payload: frequencies, timeout)
    BeepDetectionComplete = "CallEvents.BeepDetectionComplete"
    #: beep detection could not run (payload: reason)
    BeepDetectionError = "CallEvents.BeepDetectionError"
    AudioStarted = "CallEvents.AudioStarted"
    PlaybackFinished = "CallEvents.PlaybackFinished"
    #: ``record()`` started writing (payload: url, recorder)
    RecordStarted = "CallEvents.RecordStarted"
    #: the call's recording ended and is stored (payload: url, duration in s, cost, recorder)
    RecordStopped = "CallEvents.RecordStopped"
    #: the call's recording failed (payload: error, recorder)
    RecordError = "CallEvents.RecordError"
    #: ``transfer_to`` succeeded (payload: code, reason)
    TransferComplete = "CallEvents.TransferComplete"
    #: ``transfer_to`` failed (payload: code, reason)
    TransferFailed = "CallEvents.TransferFailed"
    #: a SIP MESSAGE arrived (payload: text, headers)
    MessageReceived = "CallEvents.MessageReceived"
    #: a non-DTMF SIP INFO arrived (payload: mime_type / mimeType, body, headers)
    InfoReceived = "CallEvents.InfoReceived"


class CallState:
    """Values returned by ``Call.state()`` (VoxEngine's call states)."""

    PROGRESSING = "PROGRESSING"
    ALERTING = "ALERTING"
    CONNECTED = "CONNECTED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"


def finish_reason_for(code: int) -> str:
    """CDR finish reason for a final SIP status code (RFC 3261 §21).

    200 -> "normal"; 486/600 -> "busy"; 408/480 -> "no_answer"; 487 -> "cancelled";
    603 -> "declined"; anything else -> "failed".
    """
    if 200 <= code < 300:
        return "normal"
    return {486: "busy", 600: "busy", 408: "no_answer", 480: "no_answer",
            487: "cancelled", 603: "declined"}.get(code, "failed")
