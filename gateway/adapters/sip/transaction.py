"""SIP transaction state machines (RFC 3261 §17, with RFC 6026's Accepted state).

Sans-I/O: a transaction gets a ``send(bytes)`` callable and a timer source with
``call_later(delay_s, callback) -> handle.cancel()`` (an asyncio loop fits; tests use a
fake clock). Retransmissions run over unreliable transports only.

* :class:`ClientInviteTransaction`  - §17.1.1, timers A, B, D (+ M, RFC 6026); ACKs non-2xx.
* :class:`ClientNonInviteTransaction` - §17.1.2, timers E, F, K.
* :class:`ServerInviteTransaction`  - §17.2.1, timers G, H, I (+ L, RFC 6026).
* :class:`ServerNonInviteTransaction` - §17.2.2, timer J.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from gateway.adapters.sip.message import SipRequest, SipResponse, make_response

log = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"


def new_branch() -> str:
    """A fresh RFC 3261 branch id (§8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """A timer source; ``asyncio.AbstractEventLoop`` satisfies it."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


@dataclass(frozen=True)
class TimerConfig:
    """RFC 3261 §17 timer values in seconds (Table 4). ``t1`` is configurable for tests."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timeout(self) -> float:
        """Timers B, F, H, J, L, M: 64*T1."""
        return 64 * self.t1


class State(str, Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class _Base:
    def __init__(self, request: SipRequest, send: Callable[[bytes], None], timers: Timers,
                 *, reliable: bool, config: TimerConfig,
                 on_terminated: Callable[[_Base], None] | None) -> None:
        self.request = request
        self.branch = request.top_via.branch
        self._send_cb = send
        self._timers = timers
        self.reliable = reliable
        self.config = config
        self._on_terminated = on_terminated
        self._handles: dict[str, TimerHandle] = {}
        self.state = State.TRYING

    @property
    def key(self) -> tuple[str, str]:
        method = self.request.method
        return (self.branch, "INVITE" if method == "ACK" else method)

    def _send(self, data: bytes) -> None:
        try:
            self._send_cb(data)
        except OSError as exc:
            log.warning("call-id=%s transport error sending %s: %s",
                        self.request.call_id, self.request.method, exc)
            self._transport_error()

    def _transport_error(self) -> None:
        self._terminate()

    def _start(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        self._cancel(name)
        self._handles[name] = self._timers.call_later(delay, fn)

    def _cancel(self, name: str) -> None:
        h = self._handles.pop(name, None)
        if h is not None:
            h.cancel()

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        for h in self._handles.values():
            h.cancel()
        self._handles.clear()
        if self._on_terminated:
            self._on_terminated(self)


class ClientTransaction(_Base):
    """Common part of client transactions; the TU gets ``on_response`` / ``on_timeout``."""

    def __init__(self, request: SipRequest, send: Callable[[bytes], None], timers: Timers, *,
                 reliable: bool, config: TimerConfig = TimerConfig(),
                 on_response: Callable[[SipResponse], None],
                 on_timeout: Callable[[], None],
                 on_terminated: Callable[[_Base], None] | None = None) -> None:
        super().__init__(request, send, timers, reliable=reliable, config=config,
                         on_terminated=on_terminated)
        self._on_response = on_response
        self._on_timeout = on_timeout
        self._data = request.serialize()
        self._interval = config.t1

    def _transport_error(self) -> None:
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            self._terminate()
            self._on_timeout()
        else:
            self._terminate()


class ClientInviteTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 (figure 5) with RFC 6026's Accepted state."""

    def start(self) -> None:
        """Send the INVITE and arm timers A (UDP) and B."""
        self.state = State.CALLING
        self._send(self._data)
        if self.state is State.TERMINATED:
            return
        if not self.reliable:
            self._start("A", self._interval, self._timer_a)
        self._start("B", self.config.timeout, self._timer_b)

    def _timer_a(self) -> None:
        if self.state is not State.CALLING:
            return
        self._send(self._data)
        self._interval *= 2
        self._start("A", self._interval, self._timer_a)

    def _timer_b(self) -> None:
        if self.state is State.CALLING or self.state is State.PROCEEDING:
            self._terminate()
            self._on_timeout()

    def receive_response(self, resp: SipResponse) -> None:
        """Feed a response whose branch and method match this transaction."""
        if self.state is State.TERMINATED:
            return
        if resp.status < 200:
            if self.state in (State.CALLING, State.PROCEEDING):
                self.state = State.PROCEEDING
                self._cancel("A")
                self._on_response(resp)
        elif resp.status < 300:
            if self.state in (State.CALLING, State.PROCEEDING):
                self.state = State.ACCEPTED
                self._cancel("A")
                self._cancel("B")
                self._start("M", self.config.timeout, self._terminate)
                self._on_response(resp)
            elif self.state is State.ACCEPTED:
                self._on_response(resp)  # retransmitted 2xx: the TU re-sends its ACK
        else:
            if self.state in (State.CALLING, State.PROCEEDING):
                self.state = State.COMPLETED
                self._cancel("A")
                self._cancel("B")
                self._ack = self._build_ack(resp).serialize()
                self._send(self._ack)
                self._start("D", 0 if self.reliable else 32.0, self._terminate)
                self._on_response(resp)
            elif self.state is State.COMPLETED:
                self._send(self._ack)  # retransmitted final: ACK again, not to the TU

    def _build_ack(self, resp: SipResponse) -> SipRequest:
        """ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch."""
        req = self.request
        ack = SipRequest(method="ACK", uri=req.uri)
        ack.headers.append(("Via", req.get_all("Via")[0]))
        for name in ("Max-Forwards", "From"):
            if req.get(name) is not None:
                ack.headers.append((name, req.get(name) or ""))
        ack.headers.append(("To", resp.get("To") or ""))
        ack.headers.append(("Call-ID", req.call_id))
        ack.headers.append(("CSeq", f"{req.cseq[0]} ACK"))
        for route in req.get_all("Route"):
            ack.headers.append(("Route", route))
        return ack

    def cancel_request(self) -> SipRequest:
        """The CANCEL for this INVITE (RFC 3261 §9.1): same branch, Request-URI, To, Route."""
        req = self.request
        cancel = SipRequest(method="CANCEL", uri=req.uri)
        cancel.headers.append(("Via", req.get_all("Via")[0]))
        for name in ("Max-Forwards", "From", "To", "Call-ID"):
            if req.get(name) is not None:
                cancel.headers.append((name, req.get(name) or ""))
        cancel.headers.append(("CSeq", f"{req.cseq[0]} CANCEL"))
        for route in req.get_all("Route"):
            cancel.headers.append(("Route", route))
        return cancel


class ClientNonInviteTransaction(ClientTransaction):
    """RFC 3261 §17.1.2 (figure 6)."""

    def start(self) -> None:
        """Send the request and arm timers E (UDP) and F."""
        self.state = State.TRYING
        self._send(self._data)
        if self.state is State.TERMINATED:
            return
        if not self.reliable:
            self._start("E", self._interval, self._timer_e)
        self._start("F", self.config.timeout, self._timer_f)

    def _timer_e(self) -> None:
        if self.state is State.TRYING:
            self._interval = min(2 * self._interval, self.config.t2)
        elif self.state is State.PROCEEDING:
            self._interval = self.config.t2
        else:
            return
        self._send(self._data)
        self._start("E", self._interval, self._timer_e)

    def _timer_f(self) -> None:
        if self.state in (State.TRYING, State.PROCEEDING):
            self._terminate()
            self._on_timeout()

    def receive_response(self, resp: SipResponse) -> None:
        """Feed a matching response."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # completed: absorb retransmissions
        if resp.status < 200:
            self.state = State.PROCEEDING
            self._on_response(resp)
            return
        self.state = State.COMPLETED
        self._cancel("E")
        self._cancel("F")
        self._start("K", 0 if self.reliable else self.config.t4, self._terminate)
        self._on_response(resp)


class ServerTransaction(_Base):
    """Common part of server transactions. The TU answers with :meth:`respond`."""

    def __init__(self, request: SipRequest, send: Callable[[bytes], None], timers: Timers, *,
                 reliable: bool, config: TimerConfig = TimerConfig(),
                 on_terminated: Callable[[_Base], None] | None = None) -> None:
        super().__init__(request, send, timers, reliable=reliable, config=config,
                         on_terminated=on_terminated)
        self.last_response: SipResponse | None = None
        self._last_data: bytes | None = None
        #: the TU object (a SipLeg) that owns this transaction, for CANCEL matching
        self.owner: object | None = None

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    def make_response(self, status: int, reason: str, **kw: object) -> SipResponse:
        """Shortcut for :func:`message.make_response` on this transaction's request."""
        return make_response(self.request, status, reason, **kw)  # type: ignore[arg-type]


class ServerInviteTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 (figure 7) with RFC 6026's Accepted state.

    Args:
        on_ack_timeout: called when timer H fires (no ACK for our non-2xx).
    """

    def __init__(self, *args: object, on_ack_timeout: Callable[[], None] | None = None,
                 **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.state = State.PROCEEDING
        self._on_ack_timeout = on_ack_timeout
        self._interval = self.config.t1

    def respond(self, resp: SipResponse) -> None:
        """Send a provisional or final response for the INVITE."""
        if self.state is not State.PROCEEDING:
            log.warning("call-id=%s INVITE already answered (%s); dropping %d",
                        self.request.call_id, self.state.value, resp.status)
            return
        self.last_response = resp
        self._last_data = resp.serialize()
        self._send(self._last_data)
        if resp.status < 200:
            return
        if resp.status < 300:
            self.state = State.ACCEPTED
            self._start("L", self.config.timeout, self._terminate)
            return
        self.state = State.COMPLETED
        if not self.reliable:
            self._start("G", self._interval, self._timer_g)
        self._start("H", self.config.timeout, self._timer_h)

    def send_raw(self, data: bytes) -> None:
        """Send bytes through this transaction's transport (the UAS core's 2xx retransmits)."""
        self._send(data)

    def _timer_g(self) -> None:
        if self.state is not State.COMPLETED or self._last_data is None:
            return
        self._send(self._last_data)
        self._interval = min(2 * self._interval, self.config.t2)
        self._start("G", self._interval, self._timer_g)

    def _timer_h(self) -> None:
        if self.state is State.COMPLETED:
            log.warning("call-id=%s no ACK for %s (timer H)", self.request.call_id,
                        self.last_response.status if self.last_response else "?")
            self._terminate()
            if self._on_ack_timeout:
                self._on_ack_timeout()

    def receive_request(self, req: SipRequest) -> None:
        """A retransmitted INVITE, or the ACK for our non-2xx final response."""
        if req.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._cancel("G")
                self._cancel("H")
                self._start("I", 0 if self.reliable else self.config.t4, self._terminate)
            return
        # retransmitted INVITE: re-send the last response (none in Accepted, RFC 6026)
        if self.state in (State.PROCEEDING, State.COMPLETED) and self._last_data:
            self._send(self._last_data)


class ServerNonInviteTransaction(ServerTransaction):
    """RFC 3261 §17.2.2 (figure 8)."""

    def respond(self, resp: SipResponse) -> None:
        """Send a response; the first final one completes the transaction."""
        if self.state in (State.COMPLETED, State.TERMINATED):
            return
        self.last_response = resp
        self._last_data = resp.serialize()
        self._send(self._last_data)
        if resp.status < 200:
            self.state = State.PROCEEDING
            return
        self.state = State.COMPLETED
        self._start("J", 0 if self.reliable else self.config.timeout, self._terminate)

    def receive_request(self, req: SipRequest) -> None:
        """A retransmission of the request: re-send the last response, if any."""
        if self.state in (State.PROCEEDING, State.COMPLETED) and self._last_data:
            self._send(self._last_data)


def server_key(req: SipRequest) -> tuple[str, ...]:
    """Server transaction matching key (RFC 3261 §17.2.3): branch, sent-by, method.

    ACK maps to INVITE (it belongs to the INVITE transaction when it acknowledges a
    non-2xx response). Pre-RFC 3261 branches fall back to Call-ID/CSeq/From-tag.
    """
    via = req.top_via
    method = "INVITE" if req.method == "ACK" else req.method
    if via.branch.startswith(MAGIC_COOKIE):
        return (via.branch, via.sent_by(), method)
    return (req.call_id, str(req.cseq[0]), req.from_.tag or "", via.sent_by(), method)


def client_key(resp: SipResponse) -> tuple[str, str]:
    """Client transaction matching key (RFC 3261 §17.1.3): top Via branch, CSeq method."""
    return (resp.top_via.branch, resp.cseq[1])
