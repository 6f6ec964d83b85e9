"""The contract between a protocol adapter's call leg and the runtime's ``Call``.

An adapter (SIP today; WebRTC and Twilio later) terminates one call leg and
exposes it as a :class:`CallLeg`. The runtime wraps it in a ``Call`` media unit
and registers itself as the leg's :class:`LegListener`. Audio crosses the
boundary in the leg's negotiated codec (``media_format``), 20 ms per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gateway.media.format import AudioFormat, AudioFrame


@dataclass(slots=True)
class DigestCredentials:
    """Username/password for SIP digest authentication (RFC 8760, RFC 2617)."""

    username: str
    password: str = field(repr=False)


class LegListener(Protocol):
    """What the leg reports to the runtime. Every method is called on the event loop."""

    def leg_progress(self, code: int, reason: str, headers: dict[str, str],
                     early_media: bool) -> None:
        """A 1xx response arrived (180 Ringing, 183 Session Progress) on an outbound leg."""

    def leg_connected(self, headers: dict[str, str]) -> None:
        """The leg is answered: 2xx received (outbound) or ACK received/200 sent (inbound)."""

    def leg_failed(self, code: int, reason: str, headers: dict[str, str]) -> None:
        """The leg ended before it was answered (final non-2xx, CANCEL, timeout 408)."""

    def leg_disconnected(self, headers: dict[str, str], by_remote: bool) -> None:
        """An answered leg ended (BYE from either side, or transport loss)."""

    def leg_tone(self, digit: str, tone_type: int) -> None:
        """A DTMF digit arrived; ``tone_type`` 1 = RFC 4733, 2 = in-band, 3 = SIP INFO."""

    def leg_audio(self, frame: AudioFrame) -> None:
        """20 ms of received audio in ``media_format``, paced by the leg's clock.

        Also before the answer: early media of an outbound leg (after ``leg_progress``
        with ``early_media=True``) and the caller's audio once ``start_early_media`` ran.
        """

    def leg_message(self, text: str, headers: dict[str, str]) -> None:
        """A text message arrived in the call (SIP MESSAGE, RFC 3428); ``headers`` are
        its ``X-`` headers."""

    def leg_info(self, mime_type: str, body: str, headers: dict[str, str]) -> None:
        """A non-DTMF SIP INFO arrived (RFC 6086): its content type (no parameters), body
        (UTF-8 text) and ``X-`` headers. DTMF INFO arrives as ``leg_tone(digit, 3)``."""

    def leg_transfer_result(self, success: bool, code: int, reason: str) -> None:
        """The outcome of :meth:`CallLeg.refer`, once per REFER: ``success`` with the
        transferee's 2xx, else the failing SIP ``code``/``reason`` (a non-2xx to the
        REFER, a 3xx-6xx reported in its NOTIFY, 408 timeout, 487 call ended first)."""


class CallLeg(Protocol):
    """One call leg terminated by an adapter.

    Attributes:
        id: unique leg id (also the runtime call id).
        incoming: True for a leg the remote side placed.
        number: called party (SIP Request-URI/To user, or the dialled number).
        callerid: calling party (From user).
        display_name: From display name, or "".
        headers: custom ``X-`` headers of the initial INVITE.
        media_format: negotiated audio codec (PCMU_8K or PCMA_8K); None before SDP.
        listener: the runtime side; set by the runtime before any event fires.
    """

    id: str
    incoming: bool
    number: str
    callerid: str
    display_name: str
    headers: dict[str, str]
    media_format: AudioFormat | None
    listener: LegListener | None

    async def ring(self) -> None:
        """Send 180 Ringing (inbound only)."""

    async def answer(self, headers: dict[str, str] | None = None) -> None:
        """Answer an inbound leg (200 OK with SDP answer). ``leg_connected`` follows."""

    async def reject(self, code: int = 486, reason: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
        """Reject an unanswered inbound leg with a final non-2xx response."""

    async def hangup(self, headers: dict[str, str] | None = None) -> None:
        """End the leg: BYE when answered, CANCEL when outbound and ringing, 487/603 otherwise."""

    def play(self, frame: AudioFrame) -> None:
        """Queue audio (in ``media_format``, any length) for paced playout to the remote side."""

    def clear_playout(self) -> None:
        """Drop all queued playout audio at once (barge-in)."""

    @property
    def played_ms(self) -> float:
        """Milliseconds of queued (non-filler) audio actually sent since the leg started."""

    @property
    def queued_ms(self) -> float:
        """Milliseconds of audio waiting in the playout buffer."""

    def send_digits(self, digits: str) -> None:
        """Send DTMF digits as RFC 4733 telephone-events (0-9, *, #, A-D)."""

    async def start_early_media(self, headers: dict[str, str] | None = None) -> None:
        """Unanswered inbound leg only: send 183 Session Progress with the SDP answer and
        start media, so audio flows both ways before :meth:`answer` (which sends the
        same SDP in its 200). Repeating it does nothing."""

    async def refer(self, target: str, headers: dict[str, str] | None = None) -> None:
        """Answered leg only: ask the remote side to call ``target`` (a SIP URI) in a
        REFER (RFC 3515). Returns when the REFER has its final response;
        ``leg_transfer_result`` reports the outcome (once)."""

    async def send_message(self, text: str, headers: dict[str, str] | None = None) -> None:
        """Answered leg only: send ``text`` as a SIP MESSAGE (``text/plain``).

        Raises:
            SipError: the remote side refused it or did not answer.
        """

    async def send_info(self, mime_type: str, body: str | bytes,
                        headers: dict[str, str] | None = None) -> None:
        """Answered leg only: send a SIP INFO with ``body`` of content type ``mime_type``.

        Raises:
            SipError: the remote side refused it or did not answer.
        """
