"""Call control beyond answer/hangup, as a mixin of :class:`gateway.runtime.call.Call`:
early media, blind transfer, text messages and INFO (VoxEngine ``Call.startEarlyMedia``,
``Call.transferTo``, ``Call.sendMessage``, ``Call.sendInfo``, in snake_case).

On SIP legs: early media is a 183 Session Progress with SDP (RFC 3960), a transfer is a
REFER (RFC 3515) whose result arrives as ``CallEvents.TransferComplete`` or
``CallEvents.TransferFailed`` (``code``, ``reason``), a message is a SIP MESSAGE
(RFC 3428, ``text/plain``) and INFO is a SIP INFO (RFC 6086). Incoming ones fire
``CallEvents.MessageReceived`` (``text``, ``headers``) and ``CallEvents.InfoReceived``
(``mime_type`` and VoxEngine's ``mimeType``, ``body``, ``headers``); DTMF sent as INFO
stays a ``ToneReceived`` of type 3. ``headers`` are the request's ``X-`` headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError
from gateway.runtime.constants import CallEvents, CallState

if TYPE_CHECKING:
    from gateway.runtime.leg import CallLeg
    from gateway.runtime.session import Session

#: VoxEngine's limit on a ``send_message`` text and a ``send_info`` body (bytes, UTF-8).
MAX_BODY_BYTES = 8192
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
_TRANSFER_SCHEMES = ("sip:", "sips:", "tel:")


def _body_bytes(api: str, text: object, what: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{api}: {what} must be a str, got {type(text).__name__}")
    if len(text.encode("utf-8")) > MAX_BODY_BYTES:
        raise ValueError(f"{api}: {what} is longer than {MAX_BODY_BYTES} bytes")
    return text


class CallControl:
    """``start_early_media`` / ``transfer_to`` / ``send_message`` / ``send_info`` and the
    leg-listener side of them (mixin of Call)."""

    _early_media = False
    _transfer_pending = False

    # provided by Call
    _leg: CallLeg
    _session: Session
    _state: str
    _ev: Callable[..., None]
    id: Callable[[], str]

    # -- VoxEngine API ---------------------------------------------------
    def start_early_media(self, headers: dict[str, str] | None = None) -> None:
        """Send audio to an incoming call before answering it (VoxEngine
        ``startEarlyMedia``): on SIP a 183 Session Progress with SDP, after which media
        flows both ways; ``answer()`` later connects the call. A second call does nothing.

        Raises:
            RuntimeError: the call is outgoing or no longer alerting.
        """
        if not self._leg.incoming:
            raise RuntimeError("start_early_media() is for incoming calls")
        if self._state != CallState.ALERTING:
            raise RuntimeError(f"start_early_media(): call is {self._state}")
        if self._early_media:
            return
        self._early_media = True
        self._session.spawn(self._leg.start_early_media(headers), f"early media {self.id()}")

    def transfer_to(self, to: str | dict[str, Any], headers: dict[str, str] | None = None,
                    ) -> None:
        """Transfer the connected remote party to ``to`` (VoxEngine ``transferTo``; on SIP
        a blind transfer with REFER). ``CallEvents.TransferComplete`` or
        ``CallEvents.TransferFailed`` (``code``, ``reason``) follows. The call stays up:
        the remote side usually hangs up after a successful transfer, or hang up on
        TransferComplete.

        Args:
            to: the target URI (``sip:``, ``sips:`` or ``tel:``), or a parameters dict
                ``{"to": uri, "headers": {...}}``.
            headers: extra (``X-``) headers for the REFER.

        Raises:
            ValueError: ``to`` is not a sip:/sips:/tel: URI.
            RuntimeError: the call is not connected, or a transfer is in progress.
        """
        if isinstance(to, dict):
            params = dict(to)
            headers = params.get("headers", headers)
            to = params.get("to", "")
        if not isinstance(to, str) or not to.lower().startswith(_TRANSFER_SCHEMES):
            raise ValueError(f"transfer_to: {to!r} is not a sip:, sips: or tel: URI")
        if self._state != CallState.CONNECTED:
            raise RuntimeError(f"transfer_to(): call is {self._state}")
        if self._transfer_pending:
            raise RuntimeError("transfer_to(): a transfer is already in progress")
        self._transfer_pending = True
        self._session.spawn(self._refer(to, headers), f"transfer {self.id()}")

    def send_message(self, text: str) -> None:
        """Send a text message to the remote side (VoxEngine ``sendMessage``; on SIP a
        MESSAGE with a ``text/plain`` body). A refusal is written to the session log.

        Raises:
            ValueError: ``text`` is longer than 8192 bytes.
            RuntimeError: the call is not connected.
        """
        text = _body_bytes("send_message", text, "text")
        if self._state != CallState.CONNECTED:
            raise RuntimeError(f"send_message(): call is {self._state}")
        self._session.spawn(self._leg.send_message(text), f"send_message {self.id()}")

    def send_info(self, mime_type: str, body: str, headers: dict[str, str] | None = None,
                  ) -> None:
        """Send a SIP INFO with ``body`` of content type ``mime_type`` (VoxEngine
        ``sendInfo``). A refusal is written to the session log.

        Raises:
            ValueError: ``mime_type`` is not ``type/subtype``, or ``body`` is longer than
                8192 bytes.
            RuntimeError: the call is not connected.
        """
        if not isinstance(mime_type, str) or not _MIME.match(mime_type):
            raise ValueError(f"send_info: {mime_type!r} is not a MIME type")
        body = _body_bytes("send_info", body, "body")
        if self._state != CallState.CONNECTED:
            raise RuntimeError(f"send_info(): call is {self._state}")
        self._session.spawn(self._leg.send_info(mime_type, body, headers),
                            f"send_info {self.id()}")

    async def _refer(self, to: str, headers: dict[str, str] | None) -> None:
        try:
            await self._leg.refer(to, headers)
        except GatewayError as exc:  # the REFER could not even be sent (the call ended)
            if self._transfer_pending:
                self.leg_transfer_result(False, 500, str(exc))

    # -- leg listener ------------------------------------------------------
    def leg_message(self, text: str, headers: dict[str, str]) -> None:
        self._ev(CallEvents.MessageReceived, text=text, headers=headers)

    def leg_info(self, mime_type: str, body: str, headers: dict[str, str]) -> None:
        self._ev(CallEvents.InfoReceived, mime_type=mime_type, mimeType=mime_type, body=body,
                 headers=headers)

    def leg_transfer_result(self, success: bool, code: int, reason: str) -> None:
        self._transfer_pending = False
        self._ev(CallEvents.TransferComplete if success else CallEvents.TransferFailed,
                 code=code, reason=reason)
