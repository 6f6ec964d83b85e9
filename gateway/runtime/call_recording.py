"""Call recording (VoxEngine ``Call.record`` / ``Call.stopRecording``), as a mixin of
:class:`gateway.runtime.call.Call`.

``call.record()`` records both directions of the call with a two-input
:class:`~gateway.runtime.recorder.Recorder` on the shared media clock:

* input 0 is what the call **receives** from the remote side (the caller), fed by a
  :class:`~gateway.runtime.recorder.RecorderTap` the call sends its audio to, like any
  sink (so it shows in ``call.media_sinks``);
* input 1 is what the call **sends** to the remote side (whatever is sent to the call:
  a player, an AI, another call, a conference), taken in ``Call._on_media`` as it is
  queued for playout and written one frame per tick as the playout buffer sends it; a
  ``clear_media_buffer()`` (barge-in) drops it here too (the input follows the call's
  ``queued_ms``).

Both are written on the same clock tick, so they stay aligned. ``stereo=True`` puts the
caller on the left channel and the other side on the right; mono (the default) mixes the
two. Events on the call: ``CallEvents.RecordStarted`` (``url``) once the file is open,
``CallEvents.RecordStopped`` (``url``, ``duration`` in seconds, ``cost`` 0) once it is
closed and listed in the call history, ``CallEvents.RecordError`` (``error``) if it cannot
be written. The recording stops with :meth:`CallRecording.stop_recording` or when the call
ends (``RecordStopped`` then follows ``Disconnected``, as in VoxEngine).

The call's CDR is ``call.cdr`` (a :class:`~gateway.runtime.records.CallRecord`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.runtime.constants import CallEvents, CallState
from gateway.runtime.recorder import (
    MIX,
    STEREO,
    Recorder,
    RecorderEvents,
    RecorderTap,
    recording_options,
)

if TYPE_CHECKING:
    from gateway.media.format import AudioFrame
    from gateway.runtime.recorder import RecorderInput


class CallRecording:
    """``record`` / ``stop_recording`` for a call (mixin)."""

    _recorder: Recorder | None = None
    _rec_sent: RecorderInput | None = None

    def record(self, parameters: dict[str, Any] | None = None, *,
                     stereo: bool | None = None, format: str | None = None,
                     name: str | None = None, hd_audio: bool | None = None,
                     sample_rate: int | None = None) -> Recorder:
        """Record the call: ``call.record(...)`` (VoxEngine ``Call.record(CallRecordParameters)``).

        Args:
            parameters: VoxEngine's ``CallRecordParameters`` as a dict (``stereo``,
                ``hd_audio``, ``lossless``, ``name``; storage, transcription and video
                keys are accepted and ignored); the keyword arguments win.
            stereo: caller on the left channel, the other side on the right; False
                (default) mixes both into one channel.
            format: "wav" (default) or "mp3" (libmp3lame, 32 kbit/s per channel at 8 kHz).
            name: the record's name in the call history.
            hd_audio: record at 48 kHz (VoxEngine's HD audio) instead of 8 kHz.
            sample_rate: record at this rate (8000, 16000, 24000 or 48000 Hz).

        Returns:
            The recorder (``id()``, ``url``, ``mute()``, ``stop()``). While it runs,
            calling ``record()`` again returns it unchanged.

        Raises:
            RuntimeError: the call has ended.
            ValueError: an unknown parameter, format or rate.
            RecorderError: the gateway has no recordings directory.
        """
        call: Any = self
        current = self._recorder
        if current is not None and current.active:
            return current
        if call._state in (CallState.TERMINATING, CallState.TERMINATED):
            raise RuntimeError(f"record(): call is {call._state}")
        opts = recording_options(parameters, format=format, sample_rate=sample_rate,
                                 hd_audio=hd_audio, name=name, allowed={"stereo"})
        if stereo is None:
            stereo = bool(opts["params"].get("stereo", False))
        rec = Recorder(format=opts["format"], sample_rate=opts["sample_rate"],
                       name=opts["name"], layout=STEREO if stereo else MIX,
                       owner=call._session, call_id=call.id())
        sent = rec.inputs[1]
        sent.follow = lambda: float(call.queued_ms)
        tap = RecorderTap(rec, 0)
        self._recorder, self._rec_sent = rec, sent

        def detach() -> None:
            if self._recorder is rec:
                self._recorder = self._rec_sent = None
            call.stop_media_to(tap)

        rec.add_stop_hook(detach)
        rec.add_event_listener(RecorderEvents.Started, lambda ev: call._ev(
            CallEvents.RecordStarted, url=ev.url, recorder=rec))
        rec.add_event_listener(RecorderEvents.Stopped, lambda ev: call._ev(
            CallEvents.RecordStopped, url=ev.url, duration=ev.duration, cost=ev.cost,
            recorder=rec))
        rec.add_event_listener(RecorderEvents.RecorderError, lambda ev: call._ev(
            CallEvents.RecordError, error=ev.error, recorder=rec))
        call.send_media_to(tap)
        return rec

    def stop_recording(self) -> None:
        """Stop the call's recording (VoxEngine ``Call.stopRecording``);
        ``CallEvents.RecordStopped`` follows once the file is stored. No-op when not
        recording."""
        rec = self._recorder
        if rec is not None:
            rec.stop()

    def _record_sent(self, frame: AudioFrame) -> None:
        """Hook from ``Call._on_media``: ``frame`` was queued for the remote side."""
        sent = self._rec_sent
        if sent is not None:
            sent.push(frame)
