"""Transaction state machines with a fake clock and a recording transport (RFC 3261 §17)."""

from __future__ import annotations

import heapq
from collections.abc import Callable

from gateway.adapters.sip.message import SipRequest, SipResponse, make_response, parse_message
from gateway.adapters.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    TimerConfig,
    client_key,
    server_key,
)

CFG = TimerConfig(t1=0.5, t2=4.0, t4=5.0)


class FakeClock:
    """``call_later`` on virtual time; ``advance`` fires due callbacks in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._q: list[tuple[float, int, _Handle]] = []
        self._n = 0

    def call_later(self, delay: float, cb: Callable[[], None]) -> _Handle:
        h = _Handle(cb)
        self._n += 1
        heapq.heappush(self._q, (self.now + delay, self._n, h))
        return h

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._q and self._q[0][0] <= end:
            when, _, h = heapq.heappop(self._q)
            self.now = when
            if not h.cancelled:
                h.cb()
        self.now = end


class _Handle:
    def __init__(self, cb: Callable[[], None]) -> None:
        self.cb = cb
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Wire:
    """Records (time, message) for everything a transaction sends."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, SipRequest | SipResponse]] = []

    def __call__(self, data: bytes) -> None:
        self.sent.append((self.clock.now, parse_message(data)))

    def times(self, method_or_status: str | int) -> list[float]:
        out = []
        for t, m in self.sent:
            key = m.method if isinstance(m, SipRequest) else m.status
            if key == method_or_status:
                out.append(round(t, 3))
        return out


def _invite(method: str = "INVITE") -> SipRequest:
    msg = parse_message(
        f"{method} sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc\r\n"
        f"From: <sip:a@127.0.0.1>;tag=f1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c1\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n".encode())
    assert isinstance(msg, SipRequest)
    return msg


def _resp(req: SipRequest, status: int, reason: str = "X") -> SipResponse:
    return parse_message(make_response(req, status, reason, to_tag="t9").serialize())  # type: ignore[return-value]


def _client_invite(reliable: bool = False):
    clock = FakeClock()
    wire = Wire(clock)
    got: list[SipResponse] = []
    timeouts: list[bool] = []
    tx = ClientInviteTransaction(_invite(), wire, clock, reliable=reliable, config=CFG,
                                 on_response=got.append, on_timeout=lambda: timeouts.append(True))
    tx.start()
    return clock, wire, tx, got, timeouts


def test_client_invite_retransmits_with_timer_a_until_timer_b() -> None:
    clock, wire, tx, _, timeouts = _client_invite()
    clock.advance(40)
    # Timer A: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (doubling, no cap); Timer B at 32 s
    assert wire.times("INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert timeouts == [True] and tx.state is State.TERMINATED


def test_client_invite_no_retransmission_over_tcp() -> None:
    clock, wire, _, _, timeouts = _client_invite(reliable=True)
    clock.advance(40)
    assert wire.times("INVITE") == [0.0] and timeouts == [True]


def test_provisional_stops_retransmission() -> None:
    clock, wire, tx, got, _ = _client_invite()
    clock.advance(0.6)
    tx.receive_response(_resp(tx.request, 180))
    clock.advance(10)
    assert wire.times("INVITE") == [0.0, 0.5]
    assert [r.status for r in got] == [180] and tx.state is State.PROCEEDING


def test_non_2xx_final_is_acked_with_same_branch_and_absorbed() -> None:
    clock, wire, tx, got, _ = _client_invite()
    resp = _resp(tx.request, 486, "Busy Here")
    tx.receive_response(resp)
    tx.receive_response(resp)  # retransmission: ACK again, not to the TU
    acks = [m for _, m in wire.sent if isinstance(m, SipRequest) and m.method == "ACK"]
    assert len(acks) == 2
    ack = acks[0]
    assert ack.top_via.branch == "z9hG4bKabc"
    assert ack.cseq == (1, "ACK") and ack.to.tag == "t9" and ack.uri == tx.request.uri
    assert [r.status for r in got] == [486]
    assert tx.state is State.COMPLETED
    clock.advance(32.1)  # Timer D
    assert tx.state is State.TERMINATED


def test_2xx_goes_to_tu_including_retransmissions() -> None:
    clock, wire, tx, got, _ = _client_invite()
    ok = _resp(tx.request, 200, "OK")
    tx.receive_response(ok)
    tx.receive_response(ok)
    assert [r.status for r in got] == [200, 200]
    assert wire.times("ACK") == []  # the UAC core ACKs 2xx, not the transaction
    clock.advance(32.1)  # Timer M
    assert tx.state is State.TERMINATED


def test_cancel_request_matches_invite() -> None:
    _, _, tx, _, _ = _client_invite()
    cancel = tx.cancel_request()
    assert cancel.method == "CANCEL" and cancel.uri == tx.request.uri
    assert cancel.top_via.branch == tx.branch and cancel.cseq == (1, "CANCEL")
    assert cancel.to.tag is None


def test_client_non_invite_timer_e_caps_at_t2() -> None:
    clock = FakeClock()
    wire = Wire(clock)
    timeouts: list[bool] = []
    tx = ClientNonInviteTransaction(_invite("BYE"), wire, clock, reliable=False, config=CFG,
                                    on_response=lambda r: None,
                                    on_timeout=lambda: timeouts.append(True))
    tx.start()
    clock.advance(33)
    assert wire.times("BYE") == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeouts == [True]


def test_client_non_invite_completed_then_timer_k() -> None:
    clock = FakeClock()
    wire = Wire(clock)
    got: list[SipResponse] = []
    tx = ClientNonInviteTransaction(_invite("BYE"), wire, clock, reliable=False, config=CFG,
                                    on_response=got.append, on_timeout=lambda: None)
    tx.start()
    tx.receive_response(_resp(tx.request, 200))
    tx.receive_response(_resp(tx.request, 200))
    clock.advance(4)
    assert [r.status for r in got] == [200] and wire.times("BYE") == [0.0]
    clock.advance(1.1)
    assert tx.state is State.TERMINATED


def _server_invite():
    clock = FakeClock()
    wire = Wire(clock)
    h: list[bool] = []
    tx = ServerInviteTransaction(_invite(), wire, clock, reliable=False, config=CFG,
                                 on_ack_timeout=lambda: h.append(True))
    return clock, wire, tx, h


def test_server_invite_absorbs_retransmitted_invite() -> None:
    _clock, wire, tx, _ = _server_invite()
    tx.respond(tx.make_response(100, "Trying"))
    tx.receive_request(_invite())
    tx.respond(tx.make_response(180, "Ringing", to_tag="x"))
    tx.receive_request(_invite())
    assert [m.status for _, m in wire.sent] == [100, 100, 180, 180]  # type: ignore[union-attr]


def test_server_invite_non_2xx_retransmits_timer_g_until_ack() -> None:
    clock, wire, tx, h = _server_invite()
    tx.respond(tx.make_response(486, "Busy Here", to_tag="x"))
    clock.advance(4)
    assert wire.times(486) == [0.0, 0.5, 1.5, 3.5]
    ack = _invite("ACK")
    tx.receive_request(ack)
    assert tx.state is State.CONFIRMED
    clock.advance(10)
    assert wire.times(486) == [0.0, 0.5, 1.5, 3.5]
    assert tx.state is State.TERMINATED and h == []


def test_server_invite_timer_h_without_ack() -> None:
    clock, wire, tx, h = _server_invite()
    tx.respond(tx.make_response(603, "Decline", to_tag="x"))
    clock.advance(40)
    assert wire.times(603)[:6] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]  # G capped at T2
    assert h == [True] and tx.state is State.TERMINATED


def test_server_invite_2xx_accepted_absorbs_invite_retransmission() -> None:
    clock, wire, tx, _ = _server_invite()
    tx.respond(tx.make_response(200, "OK", to_tag="x"))
    tx.receive_request(_invite())
    assert wire.times(200) == [0.0] and tx.state is State.ACCEPTED
    clock.advance(32.1)  # Timer L
    assert tx.state is State.TERMINATED


def test_server_non_invite_resends_final_and_timer_j() -> None:
    clock = FakeClock()
    wire = Wire(clock)
    tx = ServerNonInviteTransaction(_invite("BYE"), wire, clock, reliable=False, config=CFG)
    tx.receive_request(_invite("BYE"))  # nothing to resend yet
    tx.respond(tx.make_response(200, "OK"))
    tx.receive_request(_invite("BYE"))
    assert wire.times(200) == [0.0, 0.0]
    clock.advance(32.1)
    assert tx.state is State.TERMINATED


def test_matching_keys() -> None:
    inv = _invite()
    ack = _invite("ACK")
    cancel = _invite("CANCEL")
    assert server_key(inv) == server_key(ack)
    assert server_key(cancel) != server_key(inv)
    assert server_key(cancel)[:-1] == server_key(inv)[:-1]
    assert client_key(_resp(inv, 180)) == ("z9hG4bKabc", "INVITE")
