"""One SIP call leg: the UAC/UAS core of an INVITE dialog (RFC 3261 §13-§15, §9, §22).

:class:`SipLeg` implements :class:`gateway.runtime.leg.CallLeg`. Inbound legs are built
by the adapter from an INVITE whose SDP offer was acceptable; outbound legs are built by
:meth:`SipAdapter.new_outbound_leg` and started with :meth:`SipLeg.dial`. An inbound
leg may send early media (183 with SDP) before it answers; REFER, MESSAGE and INFO live
in :mod:`gateway.adapters.sip.indialog`.

Guarantees to the runtime: every leg ends with exactly one terminal event
(``leg_failed`` if it never connected, ``leg_disconnected`` otherwise), also when the
runtime itself ended it; ``leg_connected`` fires at most once; the leg's RTP session is
closed when the leg ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.adapters.sip import sdp
from gateway.adapters.sip.dialog import Dialog, new_call_id
from gateway.adapters.sip.digest import authorization, parse_challenge
from gateway.adapters.sip.indialog import LegInDialog
from gateway.adapters.sip.legcore import REASONS, LegState
from gateway.adapters.sip.message import (
    NameAddr,
    SipRequest,
    SipResponse,
    make_response,
    parse_uri,
)
from gateway.adapters.sip.transaction import (
    ServerInviteTransaction,
    ServerTransaction,
    new_branch,
)
from gateway.adapters.sip.transport import Source
from gateway.errors import SipError, SipParseError
from gateway.runtime.leg import DigestCredentials

if TYPE_CHECKING:
    from gateway.adapters.sip.adapter import SipAdapter
    from gateway.adapters.sip.rtp_session import RtpSession

log = logging.getLogger(__name__)


class SipLeg(LegInDialog):
    """A SIP call leg (see :class:`gateway.runtime.leg.CallLeg` for the contract).

    Build inbound legs with :meth:`inbound` (the adapter does), outbound ones with
    :meth:`outbound` (via ``SipAdapter.new_outbound_leg``) and start them with :meth:`dial`.
    """

    # ================================================================== inbound
    @classmethod
    def inbound(cls, adapter: SipAdapter, leg_id: str, invite: SipRequest, source: Source,
                tx: ServerInviteTransaction, offer: sdp.SessionDescription,
                params: sdp.MediaParams, rtp: RtpSession) -> SipLeg:
        """Build the leg for an acceptable initial INVITE (the adapter did the checks)."""
        frm = invite.from_
        number = parse_uri(invite.uri).user
        leg = cls(adapter, leg_id=leg_id, incoming=True, number=number,
                  callerid=_user_of(frm), display_name=frm.display,
                  headers=invite.x_headers())
        leg.call_id = invite.call_id
        leg._invite, leg._server_tx, leg._offer, leg._dest = invite, tx, offer, source
        leg._media, leg.media_format, leg._rtp = params, params.format, rtp
        leg.state = LegState.EARLY
        tx.owner = leg
        return leg

    def _require_inbound_unanswered(self, what: str) -> ServerInviteTransaction:
        if not self.incoming:
            raise SipError(f"{what}: only for inbound legs", call_id=self.id)
        tx = self._server_tx
        if self.state is not LegState.EARLY or tx is None or tx.final_sent:
            raise SipError(f"{what}: leg is {self.state.value}, not unanswered",
                           call_id=self.id)
        return tx

    async def ring(self) -> None:
        """Send 180 Ringing."""
        tx = self._require_inbound_unanswered("ring")
        resp = tx.make_response(180, "Ringing", to_tag=self.local_tag,
                                extra=[("Contact", f"<{self._contact()}>")])
        tx.respond(resp)

    def _sdp_answer(self) -> bytes:
        """Our SDP answer to the INVITE's offer; the same bytes in 183 and 200 (RFC 6337)."""
        if self._answer_sdp is None:
            assert self._offer is not None and self._media is not None
            port = self._rtp.local_port if self._rtp is not None else 9
            self._answer_sdp = sdp.build_answer(self._offer, self._media,
                                                self._adapter.advertised_host, port,
                                                version=self._sdp_version)
        return self._answer_sdp

    async def start_early_media(self, headers: dict[str, str] | None = None) -> None:
        """Send 183 Session Progress with the SDP answer and start RTP before answering
        (early media, RFC 3960 gateway model); a second call does nothing."""
        tx = self._require_inbound_unanswered("start_early_media")
        if self._early_media:
            return
        assert self._media is not None
        resp = tx.make_response(183, "Session Progress", to_tag=self.local_tag,
                                body=self._sdp_answer(),
                                extra=[("Contact", f"<{self._contact()}>"),
                                       ("Allow", self._adapter.ALLOW),
                                       *self._extra(headers)])
        self._early_media = True
        self._start_media(self._media)
        tx.respond(resp)
        log.info("%s early media (183, %s)", self._tag, self.media_format)

    async def answer(self, headers: dict[str, str] | None = None) -> None:
        """Send 200 OK with the SDP answer; ``leg_connected`` fires once it is sent."""
        tx = self._require_inbound_unanswered("answer")
        assert self._offer is not None and self._media is not None and self._invite
        resp = tx.make_response(200, "OK", to_tag=self.local_tag, body=self._sdp_answer(),
                                extra=[("Contact", f"<{self._contact()}>"),
                                       ("Allow", self._adapter.ALLOW),
                                       ("Server", self._adapter.user_agent),
                                       *self._extra(headers)])
        self._dialog = Dialog.as_uas(self._invite, self.local_tag)
        self._start_media(self._media)
        tx.respond(resp)
        self._retransmit_2xx(self._invite.cseq[0], resp.serialize())
        self.state = LegState.CONNECTED
        log.info("%s answered (%s)", self._tag, self.media_format)
        self._fire_connected({})

    def _retransmit_2xx(self, cseq: int, data: bytes) -> None:
        """UAS core: re-send a 2xx to INVITE until its ACK arrives (RFC 3261 §13.3.1.4)."""
        if self._dest is None or self._dest.reliable:
            self._pending_2xx[cseq] = (data, None)
            return
        cfg = self._adapter.timer_config
        started = self._adapter.loop_time()

        def fire(interval: float) -> None:
            if cseq not in self._pending_2xx or self.state is LegState.ENDED:
                return
            if self._adapter.loop_time() - started >= cfg.timeout:
                log.warning("%s no ACK for 2xx within 64*T1; sending BYE", self._tag)
                self._pending_2xx.pop(cseq, None)
                if self.state is LegState.CONNECTED:
                    self._bye_soon()
                    self._fire_disconnected({}, False)
                    self._finish()
                return
            self._send(data)
            nxt = min(2 * interval, cfg.t2)
            handle = self._adapter.timers.call_later(nxt, lambda: fire(nxt))
            self._pending_2xx[cseq] = (data, handle)

        self._pending_2xx[cseq] = (data, self._adapter.timers.call_later(cfg.t1,
                                                                        lambda: fire(cfg.t1)))

    async def reject(self, code: int = 486, reason: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
        """Final non-2xx to the INVITE; ``leg_failed(code)`` follows."""
        if not 300 <= code <= 699:
            raise SipError(f"reject code {code} is not 3xx-6xx", call_id=self.id)
        tx = self._require_inbound_unanswered("reject")
        reason = reason or REASONS.get(code, "Rejected")
        tx.respond(tx.make_response(code, reason, to_tag=self.local_tag,
                                    extra=self._extra(headers)))
        self._fire_failed(code, reason, {})
        self._finish()

    def on_cancel(self, cancel: SipRequest) -> None:
        """The caller cancelled (RFC 3261 §9.2): 487 to the INVITE (200 to CANCEL is sent)."""
        tx = self._server_tx
        if tx is None or tx.final_sent or self.state is LegState.ENDED:
            return
        tx.respond(tx.make_response(487, "Request Terminated", to_tag=self.local_tag))
        self._fire_failed(487, "Request Terminated", cancel.x_headers())
        self._finish()

    def on_ack(self, ack: SipRequest) -> None:
        """ACK for our 2xx (in-dialog, new branch)."""
        entry = self._pending_2xx.pop(ack.cseq[0], None)
        if entry and entry[1]:
            entry[1].cancel()

    # ================================================================== in-dialog
    def on_request(self, req: SipRequest, tx: ServerTransaction) -> None:
        """An in-dialog request (BYE, re-INVITE, OPTIONS, INFO, MESSAGE, NOTIFY) in
        server transaction ``tx``."""
        if self._dialog is not None and self._dialog.remote_seq is not None:
            if req.cseq[0] < self._dialog.remote_seq and req.method != "ACK":
                tx.respond(make_response(req, 500, "CSeq Out of Order"))
                return
            self._dialog.remote_seq = req.cseq[0]
        method = req.method
        if method == "BYE":
            tx.respond(make_response(req, 200, "OK"))
            log.info("%s BYE received", self._tag)
            if self.state is LegState.CONNECTED:
                self._fire_disconnected(req.x_headers(), True)
            elif self.incoming and self._server_tx and not self._server_tx.final_sent:
                self._server_tx.respond(self._server_tx.make_response(
                    487, "Request Terminated", to_tag=self.local_tag))
                self._fire_failed(487, "Request Terminated", req.x_headers())
            else:
                self._fire_failed(487, "Request Terminated", req.x_headers())
            self._finish()
        elif method == "INVITE":
            assert isinstance(tx, ServerInviteTransaction)
            self._on_reinvite(req, tx)
        elif method == "OPTIONS":
            tx.respond(make_response(req, 200, "OK", extra=[("Allow", self._adapter.ALLOW)]))
        elif method == "INFO":
            self._on_info(req, tx)
        elif method == "MESSAGE":
            self._on_message(req, tx)
        elif method == "NOTIFY":
            self._on_notify(req, tx)
        else:
            tx.respond(make_response(req, 405, "Method Not Allowed",
                                     extra=[("Allow", self._adapter.ALLOW)]))

    def _on_reinvite(self, req: SipRequest, tx: ServerInviteTransaction) -> None:
        if self.state is not LegState.CONNECTED or self._media is None:
            tx.respond(make_response(req, 491, "Request Pending"))
            return
        port = self._rtp.local_port if self._rtp is not None else 9
        self._sdp_version += 1
        try:
            if not req.body:
                raise sdp.NoCommonCodec("re-INVITE without offer is not supported")
            offer = sdp.parse_sdp(req.body)
            params = sdp.choose(offer)
            if params.format != self._media.format:
                raise sdp.NoCommonCodec(f"re-INVITE changes codec to {params.format}")
        except (SipParseError, sdp.NoCommonCodec) as exc:
            log.info("%s re-INVITE refused: %s", self._tag, exc)
            tx.respond(make_response(req, 488, "Not Acceptable Here",
                                     extra=[("Warning", f'399 voice-gateway "{exc}"')]))
            return
        body = sdp.build_answer(offer, params, self._adapter.advertised_host, port,
                                version=self._sdp_version)
        if params.remote != self._media.remote:
            self._start_media(params)
        resp = make_response(req, 200, "OK", body=body,
                             extra=[("Contact", f"<{self._contact()}>")])
        tx.respond(resp)
        self._retransmit_2xx(req.cseq[0], resp.serialize())

    # ================================================================== outbound
    @classmethod
    def outbound(cls, adapter: SipAdapter, leg_id: str, uri: str, *, callerid: str,
                 display_name: str, headers: dict[str, str] | None,
                 auth: DigestCredentials | None) -> SipLeg:
        """Build (not dial) an outbound leg to ``uri``.

        Raises:
            SipParseError: ``uri`` is not a SIP URI.
        """
        target = parse_uri(uri if ":" in uri.split("@")[0] else f"sip:{uri}")
        hdrs = dict(headers or {})
        leg = cls(adapter, leg_id=leg_id, incoming=False, number=target.user,
                  callerid=callerid, display_name=display_name,
                  headers={k: v for k, v in hdrs.items() if k[:2].lower() == "x-"})
        leg._target = str(target)
        leg._extra_headers = hdrs
        leg._auth = auth
        leg.call_id = new_call_id(adapter.advertised_host)
        return leg

    async def dial(self) -> None:
        """Send the INVITE with an SDP offer (PCMU, PCMA, telephone-event).

        Outcome arrives as listener events: ``leg_progress``, then ``leg_connected`` or
        ``leg_failed`` (408 after ``answer_timeout`` seconds, with a CANCEL).
        """
        if self.incoming or self.state is not LegState.NEW:
            raise SipError(f"dial: leg is {self.state.value}", call_id=self.id)
        self.state = LegState.CALLING
        adapter = self._adapter
        try:
            self._dest = await adapter.resolve(parse_uri(self._target))
            self._rtp = await adapter.open_rtp()
        except (OSError, SipError, NotImplementedError) as exc:
            log.warning("%s cannot dial %s: %r", self._tag, self._target, exc)
            self._fire_failed(503, "Service Unavailable", {})
            self._finish()
            return
        if self.state is not LegState.CALLING:  # hung up while resolving
            self._finish()
            return
        self._cseq = 1
        self._send_invite([])
        self._answer_timer = adapter.timers.call_later(adapter.answer_timeout,
                                                       self._on_answer_timeout)

    def _build_invite(self, auth_headers: list[tuple[str, str]]) -> SipRequest:
        adapter = self._adapter
        assert self._rtp is not None
        frm = NameAddr(self.display_name,
                       f"sip:{self.callerid}@{adapter.advertised_host}", {"tag": self.local_tag})
        req = SipRequest(method="INVITE", uri=self._target)
        req.headers += [("Via", f"{self._via()};branch={new_branch()}"), ("Max-Forwards", "70"),
                        ("From", str(frm)), ("To", f"<{self._target}>"),
                        ("Call-ID", self.call_id), ("CSeq", f"{self._cseq} INVITE"),
                        ("Contact", f"<{self._contact()}>"), ("Allow", adapter.ALLOW),
                        ("User-Agent", adapter.user_agent)]
        req.headers += auth_headers
        req.headers += list(self._extra_headers.items())
        req.headers.append(("Content-Type", "application/sdp"))
        req.body = sdp.build_offer(adapter.advertised_host, self._rtp.local_port)
        return req

    def _send_invite(self, auth_headers: list[tuple[str, str]]) -> None:
        assert self._dest is not None
        invite = self._build_invite(auth_headers)
        log.info("%s INVITE %s via %s (CSeq %d)", self._tag, self._target, self._dest.proto,
                 self._cseq)
        self._invite = invite
        self._progress_seen.clear()
        self._client_tx = self._adapter.start_client_tx(
            invite, self._dest, invite=True, on_response=self._on_invite_response,
            on_timeout=self._on_invite_timeout)

    def _on_invite_timeout(self) -> None:
        log.warning("%s INVITE transaction timed out", self._tag)
        if self.state in (LegState.CALLING, LegState.EARLY):
            self._fire_failed(408, "Request Timeout", {})
        self._finish()

    def _on_answer_timeout(self) -> None:
        self._answer_timer = None
        if self.state in (LegState.CALLING, LegState.EARLY):
            log.info("%s unanswered after %.1f s", self._tag, self._adapter.answer_timeout)
            self._fire_failed(408, "Request Timeout", {})
            self._cancel_invite()

    def _cancel_invite(self) -> None:
        """CANCEL now if a provisional arrived, else as soon as one does (RFC 3261 §9.1).

        The leg is over for the runtime at once; a final response still arrives on the
        INVITE transaction (a 2xx that crossed the CANCEL is ACKed and BYEd).
        """
        self._cancel_pending = True
        if self.state is LegState.EARLY and not self._cancel_sent:
            self._send_cancel()
        self._finish()

    def _send_cancel(self) -> None:
        assert self._client_tx is not None and self._dest is not None
        self._cancel_sent = True
        cancel = self._client_tx.cancel_request()
        log.info("%s sending CANCEL", self._tag)
        self._adapter.start_client_tx(cancel, self._dest, invite=False,
                                      on_response=lambda r: None, on_timeout=lambda: None)

    def _on_invite_response(self, resp: SipResponse) -> None:
        code = resp.status
        xh = resp.x_headers()
        if code == 100:
            return
        if code < 200:
            self._on_provisional(resp)
        elif code < 300:
            self._on_2xx(resp)
        else:
            if self._answer_timer and code not in (401, 407):
                self._answer_timer.cancel()
                self._answer_timer = None
            if code in (401, 407) and self.state in (LegState.CALLING, LegState.EARLY) \
                    and not self._cancel_pending and self._retry_with_auth(resp):
                return
            self._fire_failed(code, resp.reason, xh)
            self._finish()

    def _on_provisional(self, resp: SipResponse) -> None:
        if self._cancel_pending:
            if not self._cancel_sent and self._client_tx is not None:
                self._send_cancel()
            return
        if self.state not in (LegState.CALLING, LegState.EARLY):
            return
        self.state = LegState.EARLY
        early = bool(resp.body) and (resp.get("Content-Type") or "").lower().startswith(
            "application/sdp")
        if early:
            try:
                self._start_media(sdp.parse_answer(resp.body))
            except (SipParseError, sdp.NoCommonCodec) as exc:
                log.warning("%s unusable SDP in %d: %s", self._tag, resp.status, exc)
                early = False
        key = (resp.status, resp.to.tag or "")
        if key not in self._progress_seen:
            self._progress_seen.add(key)
            self._emit("leg_progress", resp.status, resp.reason, resp.x_headers(), early)

    def _ack_for(self, resp: SipResponse, dialog: Dialog) -> bytes:
        assert self._invite is not None
        ack = dialog.request("ACK", via=self._via(), contact=self._contact(),
                             cseq=self._invite.cseq[0])
        return ack.serialize()

    def _on_2xx(self, resp: SipResponse) -> None:
        assert self._invite is not None and self._dest is not None
        if self._dialog is not None:
            if resp.to.tag == self._dialog.remote_tag and self._ack_data:
                self._adapter.spawn(self._send_ack(self._ack_data, self._dialog))
                return
            # a second fork answered: ACK it and hang it up (RFC 3261 §13.2.2.4)
        try:
            dialog = Dialog.as_uac(self._invite, resp)
        except SipParseError as exc:
            log.warning("%s bad 2xx: %s", self._tag, exc)
            self._fire_failed(502, "Bad Gateway", resp.x_headers())
            self._finish()
            return
        ack = self._ack_for(resp, dialog)
        if self._dialog is not None or self.state is LegState.ENDED or self._cancel_pending:
            log.info("%s 2xx after end/for another fork: ACK then BYE", self._tag)
            self._adapter.spawn(self._ack_and_bye(ack, dialog))
            if self._dialog is None:
                self._finish()
            return
        self._dialog, self._ack_data = dialog, ack
        self._adapter.spawn(self._send_ack(ack, dialog))
        if self._answer_timer:
            self._answer_timer.cancel()
            self._answer_timer = None
        try:
            if resp.body:
                self._start_media(sdp.parse_answer(resp.body))
            elif self._media is None:
                raise sdp.NoCommonCodec("2xx has no SDP answer")
        except (SipParseError, sdp.NoCommonCodec) as exc:
            log.warning("%s unusable SDP answer: %s", self._tag, exc)
            self._bye_soon()
            self._fire_failed(488, "Not Acceptable Here", resp.x_headers())
            self._finish()
            return
        self.state = LegState.CONNECTED
        log.info("%s connected (%s)", self._tag, self.media_format)
        self._fire_connected(resp.x_headers())

    async def _send_ack(self, ack: bytes, dialog: Dialog) -> None:
        assert self._dest is not None
        self._send(ack, await self._adapter.route(dialog, self._dest))

    async def _ack_and_bye(self, ack: bytes, dialog: Dialog) -> None:
        assert self._dest is not None
        dest = await self._adapter.route(dialog, self._dest)
        self._send(ack, dest)
        bye = dialog.request("BYE", via=self._via(), contact=self._contact(),
                             extra=[("User-Agent", self._adapter.user_agent)])
        self._adapter.start_client_tx(bye, dest, invite=False,
                                      on_response=lambda r: None, on_timeout=lambda: None)

    def on_stray_2xx(self, resp: SipResponse) -> None:
        """A 2xx retransmission after the INVITE transaction ended: ACK again."""
        if not self.incoming and resp.cseq[1] == "INVITE":
            self._on_2xx(resp)

    def _retry_with_auth(self, resp: SipResponse) -> bool:
        """Answer a 401/407 challenge once (RFC 3261 §22.2): new INVITE, CSeq+1."""
        if self._auth is None or self._invite is None:
            return False
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        reply = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        auth_headers: list[tuple[str, str]] = []
        for value in resp.get_all(header):
            try:
                ch = parse_challenge(value)
            except SipParseError as exc:
                log.warning("%s ignoring challenge: %s", self._tag, exc)
                continue
            key = (ch.realm, ch.nonce)
            if (ch.realm, "") in self._answered_challenges and not ch.stale:
                log.warning("%s credentials rejected for realm %r", self._tag, ch.realm)
                return False
            if key in self._answered_challenges:
                return False
            try:
                value = authorization(challenge=ch, method="INVITE", uri=self._target,
                                      username=self._auth.username,
                                      password=self._auth.password)
            except SipParseError as exc:
                log.warning("%s cannot answer challenge: %s", self._tag, exc)
                continue
            self._answered_challenges.update({key, (ch.realm, "")})
            auth_headers.append((reply, value))
            break
        if not auth_headers:
            return False
        self._cseq += 1
        log.info("%s retrying INVITE with %s", self._tag, reply)
        self.state = LegState.CALLING
        self._send_invite(auth_headers)
        return True

    # ================================================================== both
    async def hangup(self, headers: dict[str, str] | None = None) -> None:
        """End the leg: BYE (answered), CANCEL (outbound early), 480 (inbound unanswered)."""
        if self.state is LegState.ENDED or self._terminal_fired:
            return
        if self.state is LegState.CONNECTED:
            log.info("%s hangup: BYE", self._tag)
            self._fire_disconnected({}, False)
            for _, handle in self._pending_2xx.values():
                if handle:
                    handle.cancel()
            self._pending_2xx.clear()
            try:
                await self._send_in_dialog("BYE", headers)
            finally:
                self._finish()
            return
        if self.incoming:
            if self._server_tx is not None and not self._server_tx.final_sent:
                await self.reject(480, "Temporarily Unavailable", headers)
            else:
                self._fire_failed(487, "Request Terminated", {})
                self._finish()
            return
        log.info("%s hangup before answer: CANCEL", self._tag)
        self._fire_failed(487, "Request Terminated", {})
        if self.state is LegState.NEW:
            self._finish()
            return
        self._cancel_invite()


def _user_of(addr: NameAddr) -> str:
    try:
        return parse_uri(addr.uri).user
    except SipParseError:
        return ""
