"""``VoxEngine`` B2BUA helpers: ``easy_process``, ``forward_call_to_sip``,
``forward_call_to_pstn`` (a mixin of :class:`gateway.runtime.voxengine.VoxEngineFacade`),
after Voximplant's easyprocess.js (``VoxEngine.easyProcess``, ``forwardCallToSIP``,
``forwardCallToPSTN``).

``easy_process(call1, call2)`` joins an incoming call (``call1``) to a new outgoing one
(``call2``) as a back-to-back user agent:

* ``call2`` ringing -> ``call1.ring()``; ``call2`` early media (a 183 with SDP, or its
  first audio) -> ``call1.start_early_media()`` and the audio is bridged before answer;
* ``call2`` connected -> ``call1.answer()`` (with ``call2``'s ``X-`` headers) and audio
  both ways; once both are connected ``on_established(call1, call2)`` runs;
* ``MessageReceived`` / ``InfoReceived`` on one call are sent on to the other;
* ``call2`` failed -> ``call1`` is rejected with the same code (or hung up when it is
  already answered); either call disconnected or ``call1`` failed -> the other is hung
  up. Then the session terminates, as easyprocess.js closes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.runtime.call import Call
from gateway.runtime.constants import CallEvents, CallState

if TYPE_CHECKING:
    from gateway.runtime.events import Event
    from gateway.runtime.session import Session

Established = Callable[[Call, Call], Any]
_ENDED = (CallState.TERMINATING, CallState.TERMINATED)


class _Bridge:
    """The listeners ``easy_process`` puts on two calls, and their shared state."""

    def __init__(self, session: Session, call1: Call, call2: Call,
                 on_established: Established | None,
                 on_call2_failed: Callable[[Event], Any] | None, terminate: bool) -> None:
        self.session = session
        self.call1, self.call2 = call1, call2
        self.on_established = on_established
        self.on_call2_failed = on_call2_failed
        self.terminate = terminate
        self.rang = self.early = self.bridged = self.established = False

    def attach(self) -> None:
        c1, c2 = self.call1, self.call2
        c2.add_event_listener(CallEvents.Ringing, self._ringing)
        c2.add_event_listener(CallEvents.AudioStarted, self._audio_started)
        c2.add_event_listener(CallEvents.Connected, self._call2_connected)
        c1.add_event_listener(CallEvents.Connected, self._call1_connected)
        c2.add_event_listener(CallEvents.Failed, self._call2_failed)
        c1.add_event_listener(CallEvents.Failed, self._ended)
        c1.add_event_listener(CallEvents.Disconnected, self._ended)
        c2.add_event_listener(CallEvents.Disconnected, self._ended)
        for src, dst in ((c1, c2), (c2, c1)):
            src.add_event_listener(CallEvents.MessageReceived,
                                   lambda e, dst=dst: self._relay_message(dst, e))
            src.add_event_listener(CallEvents.InfoReceived,
                                   lambda e, dst=dst: self._relay_info(dst, e))
        self._bridge()
        self._check_established()

    # -- media -----------------------------------------------------------
    def _bridge(self) -> None:
        """Audio both ways, as soon as both calls know their codec."""
        c1, c2 = self.call1, self.call2
        if self.bridged or c1.state() in _ENDED or c2.state() in _ENDED:
            return
        if c1.output_format is None or c2.output_format is None:
            return
        self.bridged = True
        c1.send_media_to(c2)
        c2.send_media_to(c1)

    def _start_early_media(self) -> None:
        c1 = self.call1
        if self.early or not c1.incoming() or c1.state() != CallState.ALERTING:
            return
        self.early = True
        c1.start_early_media()

    # -- call2's progress ----------------------------------------------------
    def _ringing(self, e: Event) -> None:
        c1 = self.call1
        if getattr(e, "early_media", False):
            self._bridge()
            self._start_early_media()
        elif not self.rang and not self.early and c1.incoming() \
                and c1.state() == CallState.ALERTING:
            self.rang = True
            c1.ring()

    def _audio_started(self, e: Event) -> None:
        self._bridge()
        self._start_early_media()

    def _call2_connected(self, e: Event) -> Any:
        self._bridge()
        c1 = self.call1
        if c1.incoming() and c1.state() == CallState.ALERTING:
            c1.answer(dict(getattr(e, "headers", None) or {}) or None)
        return self._check_established()

    def _call1_connected(self, e: Event) -> Any:
        self._bridge()
        return self._check_established()

    def _check_established(self) -> Any:
        if self.established or self.call1.state() != CallState.CONNECTED \
                or self.call2.state() != CallState.CONNECTED:
            return None
        self.established = True
        if self.on_established is not None:
            return self.on_established(self.call1, self.call2)
        return None

    # -- endings ---------------------------------------------------------------
    def _call2_failed(self, e: Event) -> Any:
        if self.on_call2_failed is not None:
            return self.on_call2_failed(e)
        c1 = self.call1
        code = int(getattr(e, "code", 0) or 0)
        if c1.incoming() and c1.state() == CallState.ALERTING:
            c1.reject(code if 400 <= code <= 699 else 480)
        else:
            c1.hangup()
        self._end_session()
        return None

    def _ended(self, e: Event) -> None:
        other = self.call2 if e.call is self.call1 else self.call1
        other.hangup()
        self._end_session()

    def _end_session(self) -> None:
        if self.terminate:
            self.session.terminate()

    # -- relays -----------------------------------------------------------------
    @staticmethod
    def _relay_message(dst: Call, e: Event) -> None:
        if dst.state() == CallState.CONNECTED:
            dst.send_message(e.text)

    @staticmethod
    def _relay_info(dst: Call, e: Event) -> None:
        if dst.state() == CallState.CONNECTED:
            dst.send_info(e.mime_type, e.body, e.headers or None)


class CallControlFactories:
    """B2BUA helpers of the VoxEngine facade (mixin)."""

    _session: Session

    if TYPE_CHECKING:  # provided by VoxEngineFacade
        def call_sip(self, to: str, callerid: str | dict[str, Any] | None = None, *,
                     display_name: str = "", headers: dict[str, str] | None = None,
                     auth_user: str | None = None, password: str | None = None) -> Call: ...

        def call_pstn(self, number: str, callerid: str,
                      headers: dict[str, str] | None = None) -> Call: ...

    def easy_process(self, call1: Call, call2: Call, on_established: Established | None = None,
                     *, on_call2_failed: Callable[[Event], Any] | None = None,
                     terminate: bool = True) -> None:
        """Pass signalling and audio between an incoming call and a new outgoing one
        (VoxEngine ``easyProcess``; see the module docstring for what is relayed).

        Args:
            call1: the incoming (alerting) call; an already answered call works too.
            call2: the outgoing call just placed with ``call_sip``/``call_pstn``.
            on_established: called with ``(call1, call2)`` once both are connected
                (sync or async).
            on_call2_failed: called with ``call2``'s ``CallEvents.Failed`` event instead
                of rejecting ``call1`` and ending the session (to try another
                destination, or to let an AI take the call).
            terminate: end the session when either call ends (easyprocess.js does).

        Raises:
            TypeError: the arguments are not calls.
            ValueError: ``call1`` and ``call2`` are the same call.
            SessionEndedError: the session has ended.
        """
        self._session.check_alive("VoxEngine.easy_process")
        if not isinstance(call1, Call) or not isinstance(call2, Call):
            raise TypeError("easy_process expects two calls")
        if call1 is call2:
            raise ValueError("easy_process: call1 and call2 are the same call")
        _Bridge(self._session, call1, call2, on_established, on_call2_failed,
                terminate).attach()

    def forward_call_to_sip(self, call: Call, to: str,
                            on_established: Established | None = None, *,
                            callerid: str | None = None, display_name: str | None = None,
                            headers: dict[str, str] | None = None,
                            on_call2_failed: Callable[[Event], Any] | None = None) -> Call:
        """Forward ``call`` to the SIP URI ``to`` (VoxEngine ``forwardCallToSIP``): dial it
        with the caller's number and display name and :meth:`easy_process` the two.

        Returns:
            The outgoing call.

        Raises:
            ValueError: ``to`` is not a sip:/sips: URI.
            SessionEndedError: the session is terminating or has ended.
        """
        self._session.check_alive("VoxEngine.forward_call_to_sip")
        if not isinstance(call, Call):
            raise TypeError("forward_call_to_sip expects the call to forward")
        call2 = self.call_sip(to, callerid or call.callerid() or "anonymous",
                              display_name=call.display_name() if display_name is None
                              else display_name, headers=headers)
        self.easy_process(call, call2, on_established, on_call2_failed=on_call2_failed)
        return call2

    def forward_call_to_pstn(self, call: Call,
                             number: str | Callable[[str], str] | None = None,
                             callerid: str | None = None,
                             on_established: Established | None = None, *,
                             headers: dict[str, str] | None = None,
                             on_call2_failed: Callable[[Event], Any] | None = None) -> Call:
        """Forward ``call`` to a phone number through the SIP trunk (VoxEngine
        ``forwardCallToPSTN``) and :meth:`easy_process` the two.

        Args:
            number: the number to call; None calls the number ``call`` dialled; a
                function maps that number (VoxEngine's ``numberTransform``).
            callerid: the caller id to show; None passes on ``call``'s caller id.

        Returns:
            The outgoing call.

        Raises:
            GatewayError: no trunk is configured.
            SessionEndedError: the session is terminating or has ended.
        """
        self._session.check_alive("VoxEngine.forward_call_to_pstn")
        if not isinstance(call, Call):
            raise TypeError("forward_call_to_pstn expects the call to forward")
        if number is None:
            number = call.number()
        elif callable(number):
            number = number(call.number())
        call2 = self.call_pstn(str(number), callerid or call.callerid(), headers)
        self.easy_process(call, call2, on_established, on_call2_failed=on_call2_failed)
        return call2
