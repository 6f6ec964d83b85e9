"""Thin asyncio SIP transports: UDP and TCP on one port (RFC 3261 §18).

The transport only moves bytes. Datagrams and TCP messages (framed by
``Content-Length``, §18.3) are handed to ``on_message(data, source)``; parsing and
everything above belong to the adapter. Responses to a TCP request go back on the
connection it came from (§18.2.2); outbound TCP requests open or reuse a connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from gateway.adapters.sip.message import StreamFramer
from gateway.errors import SipError, SipParseError

log = logging.getLogger(__name__)

Addr = tuple[str, int]


@dataclass(frozen=True)
class Source:
    """Where a message came from / where to send: ``proto`` is ``"udp"`` or ``"tcp"``."""

    proto: str
    addr: Addr

    @property
    def reliable(self) -> bool:
        return self.proto == "tcp"


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        self.owner._deliver(data, Source("udp", (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("sip udp error: %s", exc)


class _Tcp(asyncio.Protocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Addr | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.owner._tcp[self.peer] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        try:
            messages = self.framer.feed(data)
        except SipParseError as exc:
            log.warning("sip tcp %s:%d: %s; closing the connection", *self.peer, exc)
            if self.transport:
                self.transport.close()
            return
        for raw in messages:
            self.owner._deliver(raw, Source("tcp", self.peer))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer and self.owner._tcp.get(self.peer) is self:
            del self.owner._tcp[self.peer]


class SipTransport:
    """UDP socket plus TCP listener on ``host:port``.

    Args:
        host: address to bind.
        port: port to bind; 0 picks one port free for both UDP and TCP.
        on_message: called with ``(raw bytes, Source)`` for every datagram / framed message.
    """

    def __init__(self, host: str, port: int, on_message: Callable[[bytes, Source], None]) -> None:
        self.host = host
        self.port = port
        self._on_message = on_message
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._tcp: dict[Addr, _Tcp] = {}
        self._connecting: dict[Addr, asyncio.Future[None]] = {}

    async def start(self) -> int:
        """Bind both sockets; returns the port."""
        loop = asyncio.get_running_loop()
        for _attempt in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, self.port), family=socket.AF_INET)
            port = udp.get_extra_info("sockname")[1]
            try:
                server = await loop.create_server(lambda: _Tcp(self), self.host, port,
                                                  reuse_address=True)
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            self._udp, self._server, self.port = udp, server, port
            return port
        raise SipError(f"no port free for both UDP and TCP on {self.host}")

    async def stop(self) -> None:
        """Close the UDP socket, the listener and every TCP connection."""
        if self._udp:
            self._udp.close()
            self._udp = None
        if self._server:
            self._server.close()
            self._server = None
        for conn in list(self._tcp.values()):
            if conn.transport:
                conn.transport.close()
        self._tcp.clear()

    def _deliver(self, data: bytes, source: Source) -> None:
        try:
            self._on_message(data, source)
        except Exception:  # one bad message must never take the listener down
            log.exception("sip %s %s:%d: unhandled error processing message",
                          source.proto, *source.addr)

    async def connect(self, addr: Addr) -> None:
        """Open (or reuse) a TCP connection to ``addr``.

        Raises:
            OSError: the connection failed.
        """
        if addr in self._tcp:
            return
        if addr in self._connecting:
            await asyncio.shield(self._connecting[addr])
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._connecting[addr] = fut
        try:
            _, proto = await loop.create_connection(lambda: _Tcp(self), addr[0], addr[1])
            self._tcp[addr] = proto  # also keyed by the address we dialled
            fut.set_result(None)
        except OSError as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            del self._connecting[addr]

    def send(self, data: bytes, dest: Source) -> None:
        """Send bytes now.

        Raises:
            OSError: no TCP connection to ``dest`` (or the socket is closed).
        """
        if dest.proto == "tcp":
            conn = self._tcp.get(dest.addr)
            if conn is None or conn.transport is None or conn.transport.is_closing():
                raise ConnectionError(f"no TCP connection to {dest.addr[0]}:{dest.addr[1]}")
            conn.transport.write(data)
            return
        if self._udp is None:
            raise ConnectionError("SIP UDP socket is closed")
        self._udp.sendto(data, dest.addr)
