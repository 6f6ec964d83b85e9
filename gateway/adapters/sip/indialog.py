"""In-dialog requests beyond BYE and re-INVITE: REFER with its NOTIFY progress (RFC 3515,
RFC 3420 ``message/sipfrag``), MESSAGE (RFC 3428) and INFO (RFC 6086), both ways.

:class:`LegInDialog` sits between :class:`~gateway.adapters.sip.legcore.LegCore` and
:class:`~gateway.adapters.sip.leg.SipLeg`; it adds to the leg:

* ``refer(target)``: a REFER in the dialog with ``Refer-To``. The outcome reaches the
  listener once, as ``leg_transfer_result(success, code, reason)``: a non-2xx final
  response to the REFER fails it with that code; after the 2xx (202 Accepted) the
  transferee reports progress in NOTIFYs (``Event: refer``) whose ``message/sipfrag``
  body starts with the status line of its INVITE to the target (RFC 3515 §2.4.5). Each
  NOTIFY is answered 200; ``SIP/2.0 2xx`` succeeds, ``SIP/2.0 3xx-6xx`` fails with that
  code. A subscription terminated without a final status, no final NOTIFY within
  :data:`TRANSFER_TIMEOUT` seconds, or the dialog ending first also fail it.
* ``send_message(text)``: MESSAGE with a ``text/plain`` body; ``send_info(type, body)``:
  INFO with any content type. Both raise :class:`~gateway.errors.SipError` when the
  peer answers with a non-2xx (or not at all).
* Received MESSAGE (``text/*`` bodies; others get 415) becomes ``leg_message(text,
  headers)``; received INFO becomes ``leg_tone(digit, 3)`` for ``application/dtmf-relay``
  and ``leg_info(mime_type, body, headers)`` for any other non-empty INFO.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from gateway.adapters.sip.legcore import DTMF_INFO_TYPE, LegCore, LegState
from gateway.adapters.sip.message import SipRequest, SipResponse, make_response
from gateway.adapters.sip.transaction import ServerTransaction
from gateway.errors import SipError, SipParseError

log = logging.getLogger("gateway.adapters.sip.leg")

SIPFRAG_TYPE = "message/sipfrag"
#: Seconds to wait, after the REFER was accepted, for the NOTIFY with a final status.
TRANSFER_TIMEOUT = 64.0
_SIPFRAG_STATUS = re.compile(r"^\s*SIP/2\.0\s+([1-6]\d\d)(?:\s+(.*))?$")


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """Status code and reason phrase of a ``message/sipfrag`` body (RFC 3420) whose first
    line is a SIP status line, as REFER's NOTIFYs carry (RFC 3515 §2.4.5).

    Raises:
        SipParseError: the body does not start with ``SIP/2.0 <code> <reason>``.
    """
    text = body.decode("utf-8", "replace").lstrip("\r\n")
    first = text.split("\n", 1)[0].rstrip("\r")
    m = _SIPFRAG_STATUS.match(first)
    if m is None:
        raise SipParseError(f"sipfrag does not start with a status line: {first[:80]!r}")
    return int(m.group(1)), (m.group(2) or "").strip()


def media_type(value: str | None) -> str:
    """The ``type/subtype`` of a Content-Type value, without parameters."""
    return (value or "").split(";", 1)[0].strip()


@dataclass
class _Transfer:
    """One REFER we sent and the implicit ``refer`` subscription it created."""

    target: str
    accepted: bool = False
    done: bool = False
    timer: asyncio.TimerHandle | None = None


class LegInDialog(LegCore):
    """REFER, MESSAGE and INFO for a SIP leg (see the module docstring)."""

    _transfer: _Transfer | None = None

    # ------------------------------------------------------------------ sending
    async def _request(self, method: str, *, body: bytes = b"", content_type: str = "",
                       headers: list[tuple[str, str]] | None = None) -> SipResponse | None:
        """Send ``method`` in the dialog (client non-INVITE transaction, RFC 3261 §17.1.2).

        Returns:
            The final response, or None when the transaction timed out (Timer F).

        Raises:
            SipError: the leg is not connected.
        """
        if self.state is not LegState.CONNECTED or self._dialog is None or self._dest is None:
            raise SipError(f"{method}: leg is {self.state.value}, not connected",
                           call_id=self.id)
        req = self._dialog.request(method, via=self._via(), contact=self._contact(),
                                   extra=[("User-Agent", self._adapter.user_agent),
                                          *(headers or [])],
                                   body=body, content_type=content_type)
        fut: asyncio.Future[SipResponse | None] = asyncio.get_running_loop().create_future()

        def on_response(resp: SipResponse) -> None:
            if resp.status >= 200 and not fut.done():
                fut.set_result(resp)

        def on_timeout() -> None:
            if not fut.done():
                fut.set_result(None)

        dest = await self._adapter.route(self._dialog, self._dest)
        log.info("%s sending %s (CSeq %d)", self._tag, method, req.cseq[0])
        self._adapter.start_client_tx(req, dest, invite=False, on_response=on_response,
                                      on_timeout=on_timeout)
        return await fut

    async def _request_ok(self, method: str, body: bytes, content_type: str,
                          headers: list[tuple[str, str]]) -> None:
        resp = await self._request(method, body=body, content_type=content_type,
                                   headers=headers)
        if resp is None:
            raise SipError(f"{method}: no response (timeout)", call_id=self.id)
        if resp.status >= 300:
            raise SipError(f"{method} refused: {resp.status} {resp.reason}", call_id=self.id)

    async def send_message(self, text: str, headers: dict[str, str] | None = None) -> None:
        """Send ``text`` in a MESSAGE (RFC 3428), ``text/plain;charset=UTF-8``.

        Raises:
            SipError: not connected, or the peer refused it / did not answer.
        """
        await self._request_ok("MESSAGE", body=text.encode("utf-8"),
                               content_type="text/plain;charset=UTF-8",
                               headers=self._extra(headers))

    async def send_info(self, mime_type: str, body: str | bytes,
                        headers: dict[str, str] | None = None) -> None:
        """Send an INFO (RFC 6086) with ``body`` of content type ``mime_type``.

        Raises:
            SipError: not connected, or the peer refused it / did not answer.
        """
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        await self._request_ok("INFO", body=data, content_type=mime_type,
                               headers=self._extra(headers))

    async def refer(self, target: str, headers: dict[str, str] | None = None) -> None:
        """Ask the peer to call ``target`` (blind transfer, RFC 3515 / RFC 5589).

        Returns once the REFER has its final response; the outcome arrives later (or at
        once) as ``leg_transfer_result``.

        Raises:
            SipError: not connected, or a transfer is still in progress.
        """
        if self._transfer is not None and not self._transfer.done:
            raise SipError("refer: a transfer is already in progress", call_id=self.id)
        if self.state is not LegState.CONNECTED or self._dialog is None:
            raise SipError(f"refer: leg is {self.state.value}, not connected", call_id=self.id)
        transfer = self._transfer = _Transfer(target)
        refer_to = target if target.startswith("<") else f"<{target}>"
        extra = [("Refer-To", refer_to), ("Referred-By", f"<{self._dialog.local.uri}>"),
                 *self._extra(headers)]
        try:
            resp = await self._request("REFER", headers=extra)
        except SipError:
            self._transfer = None
            raise
        if transfer.done:  # the final NOTIFY overtook the 202, or the leg ended
            return
        if resp is None:
            self._transfer_result(transfer, False, 408, "Request Timeout")
        elif resp.status >= 300:
            self._transfer_result(transfer, False, resp.status, resp.reason)
        else:
            transfer.accepted = True
            log.info("%s REFER to %s accepted (%d)", self._tag, target, resp.status)
            transfer.timer = self._adapter.timers.call_later(
                TRANSFER_TIMEOUT, lambda: self._transfer_result(
                    transfer, False, 408, "No final transfer status"))

    def _transfer_result(self, transfer: _Transfer, success: bool, code: int,
                         reason: str) -> None:
        if transfer.done:
            return
        transfer.done = True
        if transfer.timer is not None:
            transfer.timer.cancel()
            transfer.timer = None
        log.info("%s transfer to %s %s: %d %s", self._tag, transfer.target,
                 "complete" if success else "failed", code, reason)
        self._emit("leg_transfer_result", success, code, reason)

    def _finish(self) -> None:
        transfer = self._transfer
        if transfer is not None and not transfer.done:
            self._transfer_result(transfer, False, 487, "Call ended before the transfer did")
        super()._finish()

    # ------------------------------------------------------------------ receiving
    def _on_notify(self, req: SipRequest, tx: ServerTransaction) -> None:
        """A NOTIFY of the ``refer`` subscription our REFER created (RFC 3515 §2.4.4)."""
        event = (req.get("Event") or "").split(";", 1)[0].strip().lower()
        transfer = self._transfer
        if event != "refer" or transfer is None:
            tx.respond(make_response(req, 481, "Subscription Does Not Exist"))
            return
        tx.respond(make_response(req, 200, "OK"))
        if transfer.done:
            return
        state = (req.get("Subscription-State") or "").split(";", 1)[0].strip().lower()
        code, reason = 0, ""
        if media_type(req.get("Content-Type")).lower() == SIPFRAG_TYPE and req.body:
            try:
                code, reason = parse_sipfrag(req.body)
            except SipParseError as exc:
                log.warning("%s NOTIFY with a bad sipfrag: %s", self._tag, exc)
        log.info("%s transfer progress: %s (%s)", self._tag, code or "?", state or "?")
        if code >= 200:
            self._transfer_result(transfer, code < 300, code, reason)
        elif state == "terminated":
            self._transfer_result(transfer, False, 487, "Transfer subscription terminated")

    def _on_message(self, req: SipRequest, tx: ServerTransaction) -> None:
        """A MESSAGE in the dialog (RFC 3428): text bodies only, others get 415."""
        ctype = media_type(req.get("Content-Type"))
        if req.body and not ctype.lower().startswith("text/"):
            tx.respond(make_response(req, 415, "Unsupported Media Type",
                                     extra=[("Accept", "text/plain")]))
            return
        tx.respond(make_response(req, 200, "OK"))
        text = req.body.decode("utf-8", "replace")
        log.info("%s MESSAGE received (%d bytes)", self._tag, len(req.body))
        self._emit("leg_message", text, req.x_headers())

    def _on_info(self, req: SipRequest, tx: ServerTransaction) -> None:
        """An INFO (RFC 6086): DTMF relay becomes tones (type 3), anything else leg_info."""
        tx.respond(make_response(req, 200, "OK"))
        ctype = media_type(req.get("Content-Type"))
        if ctype.lower() == DTMF_INFO_TYPE:
            for line in req.body.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip().lower() == "signal" and value.strip():
                    self._emit("leg_tone", value.strip()[0], 3)
            return
        if not ctype and not req.body:
            return  # an empty INFO (a keep-alive): nothing to report
        self._emit("leg_info", ctype, req.body.decode("utf-8", "replace"), req.x_headers())
