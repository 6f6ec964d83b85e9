"""``Call``: one call leg as scenario code sees it (VoxEngine ``Call``, snake_case).

A Call is a media unit: it emits the 20 ms frames received from the remote side
(in the leg's codec, so G.711 can pass through untouched) and plays whatever is
sent to it through the leg's paced playout buffer. Leg signalling becomes
``CallEvents``; custom SIP ``X-`` headers ride on each event's ``headers``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.media.format import AudioFrame
from gateway.runtime.constants import CallEvents, CallState, finish_reason_for
from gateway.runtime.events import EventTarget
from gateway.runtime.leg import CallLeg
from gateway.runtime.media_unit import MediaUnit
from gateway.runtime.records import CallRecord

if TYPE_CHECKING:
    from gateway.runtime.session import Session

log = logging.getLogger(__name__)

_DTMF = set("0123456789*#ABCD")


class Call(MediaUnit, EventTarget):
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
        self._audio_started = False
        self._was_playing = False
        self._answered_at: datetime | None = None
        self.record = CallRecord(
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
        """Enable or disable ``CallEvents.ToneReceived`` for DTMF from this call."""
        self._handle_tones = bool(enable)

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
        self.record.successful = True
        self.record.result_code = 200
        self._session.call_connected(self)
        self._ev(CallEvents.Connected, headers=headers)

    def leg_failed(self, code: int, reason: str, headers: dict[str, str]) -> None:
        self._end(code, finish_reason_for(code))
        self._ev(CallEvents.Failed, code=code, reason=reason, headers=headers)

    def leg_disconnected(self, headers: dict[str, str], by_remote: bool) -> None:
        self._end(200, "normal")
        self._ev(CallEvents.Disconnected, headers=headers, internal=not by_remote)

    def leg_tone(self, digit: str, tone_type: int) -> None:
        if self._handle_tones:
            self._ev(CallEvents.ToneReceived, tone=digit, type=tone_type)

    def leg_audio(self, frame: AudioFrame) -> None:
        if not self._audio_started:
            self._audio_started = True
            self._ev(CallEvents.AudioStarted)
        if self._routes:
            self._emit(frame)
        if self._was_playing and self._leg.queued_ms <= 0:
            self._was_playing = False
            self._ev(CallEvents.PlaybackFinished)

    def _end(self, code: int, reason: str) -> None:
        if self._state == CallState.TERMINATED:
            return
        self._state = CallState.TERMINATED
        now = datetime.now(UTC)
        rec = self.record
        rec.end_time = now
        rec.result_code = rec.result_code or code
        rec.finish_reason = reason
        if self._answered_at is not None:
            rec.duration = round((now - self._answered_at).total_seconds())
        self.stop_all_media()
        self._session.call_ended(self)
