"""State, listener events and media plumbing of a SIP call leg (RFC 3261 §12, RFC 3264).

The base of :class:`gateway.adapters.sip.leg.SipLeg`: attributes of the
:class:`~gateway.runtime.leg.CallLeg` contract, exactly-once terminal events, the RTP
session (RFC 3550/4733 via :mod:`gateway.adapters.sip.rtp_session`) and small send helpers.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import TYPE_CHECKING

from gateway.adapters.sip import sdp
from gateway.adapters.sip.dialog import Dialog, new_tag
from gateway.adapters.sip.message import SipRequest
from gateway.adapters.sip.transaction import ClientInviteTransaction, ServerInviteTransaction
from gateway.adapters.sip.transport import Source
from gateway.errors import SipError
from gateway.media.format import AudioFormat, AudioFrame
from gateway.runtime.leg import DigestCredentials, LegListener

if TYPE_CHECKING:
    from gateway.adapters.sip.adapter import SipAdapter
    from gateway.adapters.sip.rtp_session import RtpSession

log = logging.getLogger("gateway.adapters.sip.leg")

REASONS = {180: "Ringing", 183: "Session Progress", 200: "OK", 404: "Not Found",
           408: "Request Timeout", 480: "Temporarily Unavailable", 481:
           "Call/Transaction Does Not Exist", 486: "Busy Here", 487: "Request Terminated",
           488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable",
           603: "Decline"}
DTMF_INFO_TYPE = "application/dtmf-relay"


class LegState(str, Enum):
    NEW = "new"
    CALLING = "calling"  # outbound: INVITE sent, no provisional yet
    EARLY = "early"  # outbound 1xx received / inbound offered or ringing
    CONNECTED = "connected"
    ENDED = "ended"


class LegCore:
    """State, events, media and helpers shared by inbound and outbound legs.

    :class:`~gateway.adapters.sip.leg.SipLeg` adds the INVITE dialog logic
    (see :class:`gateway.runtime.leg.CallLeg` for the contract).

    Attributes:
        id: unique leg id.
        incoming: True when the remote side placed the call.
        number: Request-URI user (inbound) or the dialled target user (outbound).
        callerid: From user.
        display_name: From display name or "".
        headers: the ``X-`` headers of the initial INVITE (original case).
        media_format: negotiated codec (PCMU_8K / PCMA_8K), None before SDP.
        listener: the runtime side.
        call_id: SIP Call-ID of the dialog.
    """

    def __init__(self, adapter: SipAdapter, *, leg_id: str, incoming: bool, number: str,
                 callerid: str, display_name: str, headers: dict[str, str]) -> None:
        self.id = leg_id
        self.incoming = incoming
        self.number = number
        self.callerid = callerid
        self.display_name = display_name
        self.headers = headers
        self.media_format: AudioFormat | None = None
        self.listener: LegListener | None = None
        self.state = LegState.NEW
        self.call_id = ""
        self.local_tag = new_tag()
        self._adapter = adapter
        self._rtp: RtpSession | None = None
        self._rtp_started = False
        self._media: sdp.MediaParams | None = None
        self._dialog: Dialog | None = None
        self._dest: Source | None = None  # transport flow of the dialog
        self._sdp_version = 1
        self._connected_fired = False
        self._terminal_fired = False
        self._finished = False
        # inbound
        self._invite: SipRequest | None = None
        self._server_tx: ServerInviteTransaction | None = None
        self._offer: sdp.SessionDescription | None = None
        self._pending_2xx: dict[int, tuple[bytes, asyncio.TimerHandle | None]] = {}
        self._answer_sdp: bytes | None = None  # sent in 183 (early media) and 200
        self._early_media = False
        # outbound
        self._target = ""
        self._extra_headers: dict[str, str] = {}
        self._auth: DigestCredentials | None = None
        self._client_tx: ClientInviteTransaction | None = None
        self._answered_challenges: set[tuple[str, str]] = set()
        self._cancel_pending = False
        self._cancel_sent = False
        self._ack_data: bytes | None = None
        self._answer_timer: asyncio.TimerHandle | None = None
        self._progress_seen: set[tuple[int, str]] = set()

    def __repr__(self) -> str:
        return f"<SipLeg {self.id} {'in' if self.incoming else 'out'} {self.state.value}>"

    @property
    def _tag(self) -> str:
        return f"leg={self.id} call-id={self.call_id}"

    # ------------------------------------------------------------------ events
    def _emit(self, name: str, *args: object) -> None:
        if self.listener is None:
            log.warning("%s %s dropped: no listener", self._tag, name)
            return
        try:
            getattr(self.listener, name)(*args)
        except Exception:
            log.exception("%s listener.%s raised", self._tag, name)

    def _fire_connected(self, headers: dict[str, str]) -> None:
        if not self._connected_fired and not self._terminal_fired:
            self._connected_fired = True
            self._emit("leg_connected", headers)

    def _fire_failed(self, code: int, reason: str, headers: dict[str, str]) -> None:
        if not self._terminal_fired:
            self._terminal_fired = True
            log.info("%s failed %d %s", self._tag, code, reason)
            self._emit("leg_failed", code, reason, headers)

    def _fire_disconnected(self, headers: dict[str, str], by_remote: bool) -> None:
        if not self._terminal_fired:
            self._terminal_fired = True
            log.info("%s disconnected (by_remote=%s)", self._tag, by_remote)
            self._emit("leg_disconnected", headers, by_remote)

    def _finish(self) -> None:
        """The leg is over: stop timers, release RTP, forget the dialog (after a grace)."""
        self.state = LegState.ENDED
        rtp, self._rtp = self._rtp, None
        if rtp is not None:
            self._adapter.spawn(self._close_rtp(rtp))
        if self._finished:
            return
        self._finished = True
        if self._answer_timer:
            self._answer_timer.cancel()
            self._answer_timer = None
        for _, handle in self._pending_2xx.values():
            if handle:
                handle.cancel()
        self._pending_2xx.clear()
        # keep routing stray retransmissions (2xx, BYE) to us for a while (64*T1)
        self._adapter.timers.call_later(self._adapter.timer_config.timeout,
                                        lambda: self._adapter.unregister_leg(self))

    async def _close_rtp(self, rtp: RtpSession) -> None:
        try:
            await rtp.close()
        except NotImplementedError:
            pass
        except Exception:
            log.exception("%s closing RTP failed", self._tag)

    # ------------------------------------------------------------------ media
    def _start_media(self, params: sdp.MediaParams) -> None:
        self._media = params
        self.media_format = params.format
        if self._rtp is None:
            return
        if self._rtp_started:
            self._rtp.update_remote(params.remote)
            return
        self._rtp.start(params.remote, params.payload_type, params.format,
                        params.dtmf_payload_type, self._on_audio, self._on_dtmf)
        self._rtp_started = True

    def _on_audio(self, frame: AudioFrame) -> None:
        if self.listener is not None and self.state is not LegState.ENDED:
            self.listener.leg_audio(frame)

    def _on_dtmf(self, digit: str) -> None:
        log.info("%s DTMF %s (RFC 4733)", self._tag, digit)
        self._emit("leg_tone", digit, 1)

    def play(self, frame: AudioFrame) -> None:
        """Queue audio for paced playout (dropped before media starts or after the end)."""
        if self._rtp is not None and self._rtp_started:
            self._rtp.play(frame)

    def clear_playout(self) -> None:
        """Drop queued playout audio (barge-in)."""
        if self._rtp is not None and self._rtp_started:
            self._rtp.clear_playout()

    @property
    def played_ms(self) -> float:
        """Milliseconds of queued audio actually sent."""
        return self._rtp.played_ms if self._rtp is not None and self._rtp_started else 0.0

    @property
    def queued_ms(self) -> float:
        """Milliseconds waiting in the playout buffer."""
        return self._rtp.queued_ms if self._rtp is not None and self._rtp_started else 0.0

    def send_digits(self, digits: str) -> None:
        """Send DTMF as RFC 4733 telephone-events (needs a negotiated telephone-event PT)."""
        if self._rtp is None or not self._rtp_started:
            raise SipError("cannot send digits: media not started", call_id=self.id)
        self._rtp.send_digits(digits)

    # ------------------------------------------------------------------ helpers
    def _via(self) -> str:
        assert self._dest is not None
        return self._adapter.via(self._dest.proto)

    def _contact(self) -> str:
        assert self._dest is not None
        return self._adapter.contact_uri(self._dest.proto)

    def _extra(self, headers: dict[str, str] | None) -> list[tuple[str, str]]:
        return list((headers or {}).items())

    def _send(self, data: bytes, dest: Source | None = None) -> None:
        try:
            self._adapter.send(data, dest or self._dest)  # type: ignore[arg-type]
        except OSError as exc:
            log.warning("%s send failed: %s", self._tag, exc)

    async def _send_in_dialog(self, method: str, headers: dict[str, str] | None = None) -> None:
        """Send BYE (or another in-dialog request) in a client non-INVITE transaction."""
        assert self._dialog is not None and self._dest is not None
        req = self._dialog.request(method, via=self._via(), contact=self._contact(),
                                   extra=[("User-Agent", self._adapter.user_agent),
                                          *self._extra(headers)])
        dest = await self._adapter.route(self._dialog, self._dest)
        self._adapter.start_client_tx(req, dest, invite=False,
                                      on_response=lambda r: None,
                                      on_timeout=lambda: log.info("%s %s timed out", self._tag,
                                                                  method))

    def _bye_soon(self) -> None:
        self._adapter.spawn(self._send_in_dialog("BYE"))

