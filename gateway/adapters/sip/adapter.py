"""The SIP adapter: transports, transaction tables and request routing (RFC 3261 §8, §16-18).

:class:`SipAdapter` listens on UDP and TCP, parses every message (malformed requests
get ``400`` when they carry enough headers to answer, §8.2 / §18.3; otherwise they are
dropped), matches responses and retransmissions to transactions (§17.1.3, §17.2.3),
routes in-dialog requests to their :class:`SipLeg` (or answers ``481``), answers
OPTIONS, ``405``/``501`` for methods it does not handle, ``488`` for offers without a
common codec (§13.3.1.3), and turns acceptable INVITEs into inbound legs for the runtime.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.adapters.sip import sdp
from gateway.adapters.sip.dialog import Dialog, contact_uri
from gateway.adapters.sip.leg import SipLeg
from gateway.adapters.sip.message import (
    SipRequest,
    SipResponse,
    SipUri,
    make_response,
    parse_message,
)
from gateway.adapters.sip.rtp_session import PortAllocator, RtpSession
from gateway.adapters.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ClientTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    ServerTransaction,
    TimerConfig,
    client_key,
    server_key,
)
from gateway.adapters.sip.transport import SipTransport, Source
from gateway.errors import SipError, SipParseError
from gateway.runtime.leg import DigestCredentials

log = logging.getLogger(__name__)

_KNOWN_UNSUPPORTED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "INFO",
                                "PRACK", "UPDATE", "PUBLISH"})
_MIN_HEADERS = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
                "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}


class SipAdapter:
    """SIP user agent serving inbound and outbound call legs.

    Args:
        host: address to bind (UDP and TCP).
        port: port to bind; 0 picks one free for both.
        advertised_host: address written in Via, Contact, From and SDP.
        ports: RTP port allocator shared by every leg.
        on_incoming: awaited with each new acceptable inbound leg; return False to refuse
            it with 404, True to take it (then call ``ring``/``answer``/``reject``).
        jitter_depth: RTP jitter buffer depth in 20 ms frames.
        answer_timeout: seconds an outbound leg may stay unanswered (then 408 + CANCEL).
        user_agent: User-Agent / Server header value.
        timer_config: RFC 3261 timer values (T1, T2, T4), for tests.
        rtp_open: coroutine opening an RTP session (default ``RtpSession.open``), for tests.
    """

    ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY"

    def __init__(self, *, host: str, port: int, advertised_host: str, ports: PortAllocator,
                 on_incoming: Callable[[SipLeg], Awaitable[bool]], jitter_depth: int = 3,
                 answer_timeout: float = 60.0, user_agent: str = "voice-gateway",
                 timer_config: TimerConfig | None = None,
                 rtp_open: Callable[[], Awaitable[RtpSession]] | None = None) -> None:
        self.host = host
        self.advertised_host = advertised_host
        self.ports = ports
        self.on_incoming = on_incoming
        self.jitter_depth = jitter_depth
        self.answer_timeout = answer_timeout
        self.user_agent = user_agent
        self.timer_config = timer_config or TimerConfig()
        self._rtp_open = rtp_open
        self._transport = SipTransport(host, port, self._on_raw)
        self._client_txs: dict[tuple[str, ...], ClientTransaction] = {}
        self._server_txs: dict[tuple[str, ...], ServerTransaction] = {}
        self._legs: dict[tuple[str, str], SipLeg] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The bound SIP port (UDP and TCP)."""
        return self._transport.port

    @property
    def timers(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "SipAdapter not started"
        return self._loop

    def loop_time(self) -> float:
        return self.timers.time()

    async def start(self) -> None:
        """Bind UDP and TCP on ``host:port``."""
        self._loop = asyncio.get_running_loop()
        await self._transport.start()
        self._started = True
        log.info("SIP listening on %s:%d (udp+tcp), advertised as %s", self.host, self.port,
                 self.advertised_host)

    async def stop(self) -> None:
        """End every leg (BYE/CANCEL/480), then close the sockets."""
        legs = {id(leg): leg for leg in self._legs.values()}.values()
        for leg in list(legs):
            try:
                await leg.hangup()
            except (SipError, OSError) as exc:
                log.warning("leg=%s call-id=%s hangup on stop failed: %s", leg.id, leg.call_id,
                            exc)
        await asyncio.sleep(0)  # let spawned BYE/CANCEL/RTP-close tasks run
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for tx in [*self._client_txs.values(), *self._server_txs.values()]:
            tx._terminate()
        await self._transport.stop()
        self._legs.clear()
        self._started = False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task owned by the adapter; errors are logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP background task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ for legs
    def via(self, proto: str) -> str:
        """Our Via value without branch."""
        return f"SIP/2.0/{proto.upper()} {self.advertised_host}:{self.port};rport"

    def contact_uri(self, proto: str) -> str:
        """Our Contact URI for ``proto``."""
        suffix = ";transport=tcp" if proto == "tcp" else ""
        return f"sip:{self.advertised_host}:{self.port}{suffix}"

    async def open_rtp(self) -> RtpSession:
        """Open one RTP session for a leg."""
        if self._rtp_open is not None:
            return await self._rtp_open()
        return await RtpSession.open(self.advertised_host if self.host in ("0.0.0.0", "")
                                     else self.host, self.ports, jitter_depth=self.jitter_depth)

    async def resolve(self, uri: SipUri) -> Source:
        """Transport destination for ``uri`` (RFC 3263 without NAPTR/SRV: A record, 5060).

        Raises:
            OSError: name resolution or TCP connection failed.
        """
        proto = uri.transport
        if proto not in ("udp", "tcp"):
            raise SipError(f"unsupported transport {proto!r} in {uri}")
        port = uri.port or 5060
        try:
            host = str(ipaddress.ip_address(uri.host))
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(
                uri.host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
            if not infos:
                raise OSError(f"cannot resolve {uri.host}") from None
            host = infos[0][4][0]
        if proto == "tcp":
            await self._transport.connect((host, port))
        return Source(proto, (host, port))

    async def route(self, dialog: Dialog, flow: Source) -> Source:
        """Destination of an in-dialog request: the dialog's TCP flow, else its next hop."""
        if flow.reliable:
            return flow
        try:
            return await self.resolve(dialog.next_hop())
        except (OSError, SipError, SipParseError) as exc:
            log.warning("call-id=%s cannot route to %s (%s); using the original flow",
                        dialog.call_id, dialog.remote_target, exc)
            return flow

    def send(self, data: bytes, dest: Source) -> None:
        """Send bytes (raises OSError when a TCP flow is gone)."""
        self._transport.send(data, dest)

    def start_client_tx(self, request: SipRequest, dest: Source, *, invite: bool,
                        on_response: Callable[[SipResponse], None],
                        on_timeout: Callable[[], None]) -> ClientTransaction:
        """Create, register and start a client transaction for ``request``."""
        cls = ClientInviteTransaction if invite else ClientNonInviteTransaction
        tx = cls(request, lambda data: self._transport.send(data, dest), self.timers,
                 reliable=dest.reliable, config=self.timer_config, on_response=on_response,
                 on_timeout=on_timeout, on_terminated=self._client_tx_done)
        self._client_txs[tx.key] = tx
        tx.start()
        return tx

    def _client_tx_done(self, tx: Any) -> None:
        self._client_txs.pop(tx.key, None)

    def register_leg(self, leg: SipLeg) -> None:
        self._legs[(leg.call_id, leg.local_tag)] = leg

    def unregister_leg(self, leg: SipLeg) -> None:
        if self._legs.get((leg.call_id, leg.local_tag)) is leg:
            del self._legs[(leg.call_id, leg.local_tag)]

    @property
    def legs(self) -> list[SipLeg]:
        """Legs currently known (including ones ended less than 64*T1 ago)."""
        return list(self._legs.values())

    # ------------------------------------------------------------------ outbound API
    def new_outbound_leg(self, uri: str, *, callerid: str, display_name: str = "",
                         headers: dict[str, str] | None = None,
                         auth: DigestCredentials | None = None) -> SipLeg:
        """Build an outbound leg to ``uri`` (``sip:user@host[:port][;transport=tcp]``).

        The runtime sets ``leg.listener`` and then awaits ``leg.dial()``.

        Raises:
            SipParseError: ``uri`` is not a SIP URI.
        """
        leg = SipLeg.outbound(self, uuid.uuid4().hex, uri, callerid=callerid,
                              display_name=display_name, headers=headers, auth=auth)
        self.register_leg(leg)
        return leg

    # ------------------------------------------------------------------ receive path
    def _on_raw(self, data: bytes, source: Source) -> None:
        try:
            msg = parse_message(data, stream=source.reliable)
            if isinstance(msg, SipResponse):
                self._on_response(msg)
            else:
                self._on_request(msg, source)
        except SipParseError as exc:
            call_id = exc.call_id or _grep_call_id(data)
            log.warning("call-id=%s malformed SIP from %s %s:%d: %s", call_id, source.proto,
                        *source.addr, exc)
            self._bad_request(data, exc, source)

    def _bad_request(self, data: bytes, exc: SipParseError, source: Source) -> None:
        """Answer 400 when the garbage is a request we can address (§8.1.3.5 / §18.3)."""
        text = data.decode("utf-8", "replace").replace("\r\n", "\n")
        head = text.split("\n\n", 1)[0].split("\n")
        if not head or head[0].startswith("SIP/") or head[0].startswith("ACK "):
            return
        found: dict[str, list[str]] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            canon = _MIN_HEADERS.get(name.strip().lower())
            if sep and canon:
                found.setdefault(canon, []).append(value.strip())
        if any(h not in found for h in ("Via", "From", "To", "Call-ID", "CSeq")):
            return
        reason = "Bad Request - " + re.sub(r"[^\x20-\x7e]", "?", str(exc))[:120]
        resp = SipResponse(status=400, reason=reason)
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in found[name] if name == "Via" else found[name][:1]:
                resp.headers.append((name, value))
        try:
            self._transport.send(resp.serialize(), source)
        except OSError as err:
            log.warning("cannot send 400: %s", err)

    def _on_response(self, resp: SipResponse) -> None:
        tx = self._client_txs.get(client_key(resp))
        if tx is not None:
            tx.receive_response(resp)  # type: ignore[attr-defined]
            return
        if 200 <= resp.status < 300 and resp.cseq[1] == "INVITE":
            leg = self._legs.get((resp.call_id, resp.from_.tag or ""))
            if leg is not None:
                leg.on_stray_2xx(resp)
                return
        log.debug("call-id=%s stray %d response dropped", resp.call_id, resp.status)

    def _new_server_tx(self, req: SipRequest, source: Source) -> ServerTransaction:
        cls = ServerInviteTransaction if req.method == "INVITE" else ServerNonInviteTransaction
        tx = cls(req, lambda data: self._transport.send(data, source), self.timers,
                 reliable=source.reliable, config=self.timer_config,
                 on_terminated=self._server_tx_done)
        self._server_txs[server_key(req)] = tx
        return tx

    def _server_tx_done(self, tx: Any) -> None:
        self._server_txs.pop(server_key(tx.request), None)

    def _on_request(self, req: SipRequest, source: Source) -> None:
        key = server_key(req)
        tx = self._server_txs.get(key)
        method = req.method
        if method == "ACK":
            if isinstance(tx, ServerInviteTransaction) and tx.final_sent \
                    and tx.last_response is not None and tx.last_response.status >= 300:
                tx.receive_request(req)
                return
            leg = self._legs.get((req.call_id, req.to.tag or ""))
            if leg is not None:
                leg.on_ack(req)
            else:
                log.debug("call-id=%s ACK matches nothing; dropped", req.call_id)
            return
        if tx is not None:
            log.debug("call-id=%s %s retransmission absorbed", req.call_id, method)
            tx.receive_request(req)  # type: ignore[attr-defined]
            return
        tx = self._new_server_tx(req, source)
        if method == "CANCEL":
            self._on_cancel(req, tx)
            return
        to_tag = req.to.tag
        if to_tag:
            leg = self._legs.get((req.call_id, to_tag))
            if leg is None:
                tx.respond(make_response(req, 481, "Call/Transaction Does Not Exist"))
                return
            leg.on_request(req, tx)
            return
        if method == "INVITE":
            assert isinstance(tx, ServerInviteTransaction)
            tx.respond(make_response(req, 100, "Trying"))
            self.spawn(self._new_call(req, tx, source))
        elif method == "OPTIONS":
            tx.respond(make_response(req, 200, "OK", extra=[
                ("Allow", self.ALLOW), ("Accept", "application/sdp"),
                ("Server", self.user_agent)]))
        elif method == "BYE":
            tx.respond(make_response(req, 481, "Call/Transaction Does Not Exist"))
        elif method in _KNOWN_UNSUPPORTED:
            tx.respond(make_response(req, 405, "Method Not Allowed",
                                     extra=[("Allow", self.ALLOW)]))
        else:
            tx.respond(make_response(req, 501, "Not Implemented",
                                     extra=[("Allow", self.ALLOW)]))

    def _on_cancel(self, cancel: SipRequest, tx: ServerTransaction) -> None:
        """RFC 3261 §9.2: 200 to the CANCEL; the INVITE gets 487 from its leg."""
        invite_key = (*server_key(cancel)[:-1], "INVITE")
        invite_tx = self._server_txs.get(invite_key)
        if not isinstance(invite_tx, ServerInviteTransaction):
            tx.respond(make_response(cancel, 481, "Call/Transaction Does Not Exist"))
            return
        tx.respond(make_response(cancel, 200, "OK"))
        log.info("call-id=%s CANCEL received", cancel.call_id)
        owner = invite_tx.owner
        if isinstance(owner, SipLeg):
            owner.on_cancel(cancel)
        elif not invite_tx.final_sent:
            invite_tx.respond(make_response(invite_tx.request, 487, "Request Terminated",
                                            to_tag=uuid.uuid4().hex[:12]))

    async def _new_call(self, invite: SipRequest, tx: ServerInviteTransaction,
                        source: Source) -> None:
        """Vet a new INVITE, build its leg and hand it to ``on_incoming``."""
        cid = invite.call_id
        reject_tag = uuid.uuid4().hex[:12]
        if contact_uri(invite) is None:
            tx.respond(make_response(invite, 400, "Bad Request - missing Contact",
                                     to_tag=reject_tag))
            return
        ctype = (invite.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            if not invite.body or ctype != "application/sdp":
                raise sdp.NoCommonCodec("INVITE without an SDP offer is not supported")
            offer = sdp.parse_sdp(invite.body)
            params = sdp.choose(offer)
        except (SipParseError, sdp.NoCommonCodec) as exc:
            log.info("call-id=%s INVITE refused with 488: %s", cid, exc)
            tx.respond(make_response(invite, 488, "Not Acceptable Here", to_tag=reject_tag,
                                     extra=[("Warning", f'304 voice-gateway "{exc}"')]))
            return
        try:
            rtp = await self.open_rtp()
        except Exception as exc:
            log.error("call-id=%s cannot open RTP: %r", cid, exc)
            tx.respond(make_response(invite, 503, "Service Unavailable", to_tag=reject_tag))
            return
        if tx.final_sent:  # CANCELled while we opened RTP
            await rtp.close()
            return
        leg = SipLeg.inbound(self, uuid.uuid4().hex, invite, source, tx, offer, params, rtp)
        self.register_leg(leg)
        log.info("leg=%s call-id=%s inbound call %s -> %s (%s)", leg.id, cid, leg.callerid,
                 leg.number, params.format)
        try:
            accepted = await self.on_incoming(leg)
        except Exception:
            log.exception("leg=%s call-id=%s on_incoming raised", leg.id, cid)
            accepted = None
        if accepted:
            return
        if not tx.final_sent:
            code, reason = ((404, "Not Found") if accepted is False
                            else (500, "Server Internal Error"))
            tx.respond(make_response(invite, code, reason, to_tag=leg.local_tag))
        leg._terminal_fired = True  # the runtime refused it: no events
        leg._finish()


def _grep_call_id(data: bytes) -> str:
    m = re.search(rb"(?im)^(?:call-id|i)[ \t]*:[ \t]*(\S+)", data)
    return m.group(1).decode("utf-8", "replace") if m else "?"
