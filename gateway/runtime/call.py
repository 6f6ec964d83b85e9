"""``Call``: one call leg as scenario code sees it (VoxEngine ``Call``, snake_case).

A Call is a media unit: it emits the 20 ms frames received from the remote side
(in the leg's codec, so G.711 can pass through untouched) and plays whatever is
sent to it through the leg's paced playout buffer. Leg signalling becomes
``CallEvents``; custom SIP ``X-`` headers ride on each event's ``headers``.

Tones: with ``handle_tones(True)`` DTMF arrives as ``CallEvents.ToneReceived`` with
VoxEngine's ``type``: 1 RFC 4733 telephone-event, 2 in-band (the received audio is decoded
and run through :class:`~gateway.media.dtmf_inband.InbandDtmfDetector`), 3 SIP INFO. A
press that arrives both in-band and out-of-band (1 or 3) within ``DTMF_DEDUP_MS`` of
audio is reported once, by whichever came first. ``enable_beep_detection()`` runs
:class:`~gateway.media.tones.BeepDetector` for an answering machine's beep. Received
audio is decoded only while one of the two detectors is on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.media.format import AudioFrame, Encoding
from gateway.media.g711 import alaw_to_pcm16, ulaw_to_pcm16
from gateway.runtime.call_control import CallControl
from gateway.runtime.call_playback import CallPlayback
from gateway.runtime.call_recording import CallRecording
from gateway.runtime.constants import CallEvents, CallState, finish_reason_for
from gateway.runtime.events import EventTarget
from gateway.runtime.leg import CallLeg
from gateway.runtime.media_unit import MediaUnit
from gateway.runtime.records import CallRecord

if TYPE_CHECKING:
    from gateway.media.dtmf_inband import InbandDtmfDetector
    from gateway.media.tones import Beep, BeepDetector
    from gateway.runtime.session import Session

log = logging.getLogger(__name__)

_DTMF = set("0123456789*#ABCD")
#: ToneReceived ``type`` values (VoxEngine): RFC 4733, in-band, SIP INFO.
TONE_RFC4733, TONE_INBAND, TONE_SIP_INFO = 1, 2, 3
#: An in-band and an out-of-band report of one key this close (ms of received audio;
#: the in-band side counts from when its tone was last heard) are one press.
DTMF_DEDUP_MS = 100.0
#: Queued playout (ms) above which the audio sent to a call counts as a burst (an AI
#: answer) whose end fires ``CallEvents.PlaybackFinished``.
BURST_MS = 60.0


class Call(MediaUnit, EventTarget, CallPlayback, CallRecording, CallControl):
    """One call leg in a session.

    Args:
        session: the owning session.
        leg: the adapter's leg (SIP today); its ``listener`` becomes this Call.
    """

    def __init__(self, session: Session, leg: CallLeg) -> None:
        MediaUnit.__init__(self)
        EventTarget.__init__(self, session)
        self._session = session
        self._leg = leg
        self._state = CallState.ALERTING if leg.incoming else CallState.PROGRESSING
        self._handle_tones = False
        self._inband: InbandDtmfDetector | None = None
        self._beep: BeepDetector | None = None
        self._beep_timer: asyncio.TimerHandle | None = None
        self._detect_ms = 0.0  # received audio run through the detectors (dedup clock)
        self._last_tone: dict[bool, tuple[str, float]] = {}  # in-band? -> (digit, ms)
        self._audio_started = False
        self._was_playing = False
        self._answered_at: datetime | None = None
        #: The call's CDR (``call.record(...)`` records the call's audio).
        self.cdr = CallRecord(
            call_id=leg.id, start_time=datetime.now(UTC), incoming=leg.incoming,
            local_number=leg.number if leg.incoming else leg.callerid,
            remote_number=leg.callerid if leg.incoming else leg.number,
            direction="in" if leg.incoming else "out",
        )
        self.input_format = self.output_format = leg.media_format
        leg.listener = self

    # -- VoxEngine API ---------------------------------------------------
    def id(self) -> str:
        """The call id (unique per gateway)."""
        return self._leg.id

    def state(self) -> str:
        """One of ``CallState``: PROGRESSING, ALERTING, CONNECTED, TERMINATING, TERMINATED."""
        return self._state

    def number(self) -> str:
        """Called number / SIP user (the dialled destination)."""
        return self._leg.number

    def callerid(self) -> str:
        """Calling number / From user."""
        return self._leg.callerid

    def display_name(self) -> str:
        """From display name, or ""."""
        return self._leg.display_name

    def incoming(self) -> bool:
        """True when the remote side placed this call."""
        return self._leg.incoming

    def headers(self) -> dict[str, str]:
        """Custom ``X-`` headers of the initial INVITE."""
        return dict(self._leg.headers)

    def ring(self) -> None:
        """Send 180 Ringing to an incoming call."""
        self._session.spawn(self._leg.ring(), f"ring {self.id()}")

    def answer(self, headers: dict[str, str] | None = None) -> None:
        """Answer an incoming call; ``CallEvents.Connected`` follows.

        Raises:
            RuntimeError: the call is outgoing or no longer alerting.
        """
        if not self._leg.incoming:
            raise RuntimeError("answer() is for incoming calls")
        if self._state != CallState.ALERTING:
            raise RuntimeError(f"answer(): call is {self._state}")
        self._state = CallState.PROGRESSING
        self._session.spawn(self._leg.answer(headers), f"answer {self.id()}")

    def reject(self, code: int = 486, headers: dict[str, str] | None = None) -> None:
        """Reject an unanswered incoming call with SIP ``code`` (default 486 Busy Here)."""
        if self._state in (CallState.TERMINATING, CallState.TERMINATED):
            return
        if not 400 <= int(code) <= 699:
            raise ValueError("reject code must be a SIP 4xx-6xx status")
        self._state = CallState.TERMINATING
        self._session.spawn(self._leg.reject(int(code), None, headers), f"reject {self.id()}")

    def hangup(self, headers: dict[str, str] | None = None) -> None:
        """End the call (BYE, CANCEL or a final response, as the leg's state requires)."""
        if self._state in (CallState.TERMINATING, CallState.TERMINATED):
            return
        self._state = CallState.TERMINATING
        self._session.spawn(self._leg.hangup(headers), f"hangup {self.id()}")

    def handle_tones(self, enable: bool = True) -> None:
        """Enable or disable ``CallEvents.ToneReceived`` for DTMF from this call.

        While enabled, the received audio is also decoded and searched for in-band DTMF
        (ITU-T Q.24 receiver, ``type=2``), next to RFC 4733 (``type=1``) and SIP INFO
        (``type=3``) digits.
        """
        self._handle_tones = bool(enable)
        if not enable:
            self._inband = None
        elif self._inband is None:
            from gateway.media.dtmf_inband import InbandDtmfDetector  # numpy: load on use

            self._inband = InbandDtmfDetector()

    def enable_beep_detection(self, parameters: dict[str, Any] | None = None, *,
                              frequencies: Iterable[float] | None = None,
                              timeout: float | None = None) -> None:
        """Listen for an answering machine's beep (VoxEngine ``Call.enableBeepDetection``).

        When a beep (one steady tone of 300-2500 Hz lasting 100 ms or more) ends,
        ``CallEvents.ToneDetected`` fires with ``tone="beep"``, ``VoicemailTone=True``,
        ``ProgressTone=False``, ``frequency`` (Hz) and ``duration`` (ms), then
        ``CallEvents.BeepDetectionComplete`` with ``frequencies=[frequency]`` and
        ``timeout=None``, and detection stops. Without a beep within ``timeout``,
        BeepDetectionComplete fires with ``frequencies=None`` and ``timeout=True``.
        Calling it again restarts detection with the new parameters; detection also
        stops, silently, when the call ends. ``CallEvents.BeepDetectionError`` (with a
        ``reason``) fires if the call's audio cannot be analysed (not 8 kHz mono).

        Args:
            parameters: VoxEngine's ``CallEnableBeepDetectionParameters`` as a dict:
                ``frequencies`` and/or ``timeout`` (the keyword arguments win).
            frequencies: only beeps within 3 % of one of these frequencies (Hz) count.
            timeout: milliseconds to wait for a beep; None waits until disabled.

        Raises:
            ValueError: an unknown parameter, a non-positive ``timeout`` or frequency.
            RuntimeError: the call has ended.
        """
        params = dict(parameters or {})
        unknown = set(params) - {"frequencies", "timeout"}
        if unknown:
            raise ValueError(f"enable_beep_detection: unknown parameters {sorted(unknown)}")
        if frequencies is None:
            frequencies = params.get("frequencies")
        if timeout is None:
            timeout = params.get("timeout")
        if timeout is not None and not float(timeout) > 0:
            raise ValueError("enable_beep_detection: timeout must be a positive number of ms")
        if self._state in (CallState.TERMINATING, CallState.TERMINATED):
            raise RuntimeError(f"enable_beep_detection(): call is {self._state}")
        from gateway.media.tones import BeepDetector  # numpy: load on use

        detector = BeepDetector(frequencies=list(frequencies) if frequencies else None)
        self._stop_beep_detection()
        self._beep = detector
        if timeout is not None:
            self._beep_timer = asyncio.get_running_loop().call_later(
                float(timeout) / 1000, self._beep_timed_out)

    def disable_beep_detection(self) -> None:
        """Stop beep detection (VoxEngine ``Call.disableBeepDetection``).

        If it was running, ``CallEvents.BeepDetectionComplete`` fires with
        ``frequencies=None`` and ``timeout=False``.
        """
        if self._beep is not None:
            self._stop_beep_detection()
            self._ev(CallEvents.BeepDetectionComplete, frequencies=None, timeout=False)

    def send_digits(self, digits: str) -> None:
        """Send DTMF as RFC 4733 telephone-events.

        Raises:
            ValueError: a character outside 0-9, *, #, A-D.
        """
        bad = set(str(digits).upper()) - _DTMF
        if bad:
            raise ValueError(f"send_digits: invalid DTMF {''.join(sorted(bad))!r}")
        self._leg.send_digits(str(digits).upper())

    def clear_media_buffer(self) -> None:
        """Drop audio queued for playout to the remote side at once (barge-in)."""
        self._leg.clear_playout()
        self._was_playing = False

    @property
    def played_ms(self) -> float:
        """Milliseconds of queued audio actually sent to the remote side so far."""
        return self._leg.played_ms

    @property
    def queued_ms(self) -> float:
        """Milliseconds of audio waiting in the playout buffer."""
        return self._leg.queued_ms

    def __repr__(self) -> str:
        return f"<Call {self.id()} {self._state}>"

    # -- media -------------------------------------------------------------
    def _on_media(self, frame: AudioFrame) -> None:
        if self._state == CallState.TERMINATED:
            return
        self._leg.play(frame)
        self._record_sent(frame)  # CallRecording: the "sent" side of call.record()
        # AI audio arrives in bursts and queues up; a paced stream (another call, a
        # player, a conference) never queues more than a frame or two: only a burst
        # that queued makes "PlaybackFinished" meaningful when it drains
        if self._leg.queued_ms > BURST_MS:
            self._was_playing = True

    # -- leg listener ------------------------------------------------------
    def _ev(self, name: str, **payload: Any) -> None:
        self._session.log_event(name, self.id(), payload.get("code"))
        self.dispatch(name, call=self, **payload)

    def _update_format(self) -> None:
        fmt = self._leg.media_format
        if fmt is not None and fmt != self.output_format:
            self.input_format = self.output_format = fmt
            self._formats_changed()

    def leg_progress(self, code: int, reason: str, headers: dict[str, str],
                     early_media: bool) -> None:
        self._update_format()
        self._ev(CallEvents.Ringing, code=code, reason=reason, headers=headers,
                 early_media=early_media)

    def leg_connected(self, headers: dict[str, str]) -> None:
        self._update_format()
        self._state = CallState.CONNECTED
        self._answered_at = datetime.now(UTC)
        self.cdr.successful = True
        self.cdr.result_code = 200
        self._session.call_connected(self)
        self._ev(CallEvents.Connected, headers=headers)

    def leg_failed(self, code: int, reason: str, headers: dict[str, str]) -> None:
        self._end(code, finish_reason_for(code))
        self._ev(CallEvents.Failed, code=code, reason=reason, headers=headers)

    def leg_disconnected(self, headers: dict[str, str], by_remote: bool) -> None:
        self._end(200, "normal")
        self._ev(CallEvents.Disconnected, headers=headers, internal=not by_remote)

    def leg_tone(self, digit: str, tone_type: int) -> None:
        if not self._handle_tones:
            return
        inband = tone_type == TONE_INBAND
        now = self._detect_ms
        other = self._last_tone.get(not inband)
        self._last_tone[inband] = (digit, now)
        if other is not None and other[0] == digit and now - other[1] <= DTMF_DEDUP_MS:
            log.debug("%s DTMF %s (type %d) already reported by another path", self.id(),
                      digit, tone_type)
            return
        self._ev(CallEvents.ToneReceived, tone=digit, type=tone_type)

    def leg_audio(self, frame: AudioFrame) -> None:
        if not self._audio_started:
            self._audio_started = True
            self._ev(CallEvents.AudioStarted)
        if self._inband is not None or self._beep is not None:
            self._detect(frame)
        if self._routes:
            self._emit(frame)
        if self._was_playing and self._leg.queued_ms <= 0:
            self._was_playing = False
            self._ev(CallEvents.PlaybackFinished)

    # -- tone detectors ------------------------------------------------------
    def _detect(self, frame: AudioFrame) -> None:
        """Run the enabled detectors over one received frame (decoded to PCM16)."""
        fmt = frame.format
        if fmt.sample_rate != 8000 or fmt.channels != 1:  # narrowband telephony audio only
            if self._beep is not None:
                self._stop_beep_detection()
                self._ev(CallEvents.BeepDetectionError, reason=f"cannot analyse {fmt} audio")
            return
        if fmt.encoding is Encoding.PCMU:
            pcm = ulaw_to_pcm16(frame.data)
        elif fmt.encoding is Encoding.PCMA:
            pcm = alaw_to_pcm16(frame.data)
        else:
            pcm = frame.data
        self._detect_ms += frame.duration_ms
        if self._inband is not None:
            for digit in self._inband.feed(pcm):
                self.leg_tone(digit, TONE_INBAND)
            current = self._inband.current if self._inband is not None else None
            if current is not None:  # a press still sounding keeps its dedup window open
                self._last_tone[True] = (current, self._detect_ms)
        if self._beep is not None:
            beeps = self._beep.feed(pcm)
            if beeps:
                self._beep_found(beeps[0])

    def _beep_found(self, beep: Beep) -> None:
        self._stop_beep_detection()
        freq, duration = beep.frequency, round(beep.duration_ms)
        self._ev(CallEvents.ToneDetected, tone="beep", VoicemailTone=True, ProgressTone=False,
                 frequency=freq, duration=duration)
        self._ev(CallEvents.BeepDetectionComplete, frequencies=[freq], timeout=None,
                 frequency=freq, duration=duration)

    def _beep_timed_out(self) -> None:
        self._beep_timer = None
        if self._beep is not None:
            self._stop_beep_detection()
            self._ev(CallEvents.BeepDetectionComplete, frequencies=None, timeout=True)

    def _stop_beep_detection(self) -> None:
        self._beep = None
        if self._beep_timer is not None:
            self._beep_timer.cancel()
            self._beep_timer = None

    def _end(self, code: int, reason: str) -> None:
        if self._state == CallState.TERMINATED:
            return
        self._state = CallState.TERMINATED
        self._stop_beep_detection()
        self._inband = None
        now = datetime.now(UTC)
        rec = self.cdr
        rec.end_time = now
        rec.result_code = rec.result_code or code
        rec.finish_reason = reason
        if self._answered_at is not None:
            rec.duration = round((now - self._answered_at).total_seconds())
        self.stop_all_media()
        self._session.call_ended(self)
