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
        """20 ms of received audio in ``media_format``, paced by the leg's clock."""


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
