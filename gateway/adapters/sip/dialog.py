"""SIP dialogs: identity, CSeq, route set and remote target (RFC 3261 §12, §13.2.2.4, §16.12).

A :class:`Dialog` is created from the INVITE and its 2xx (UAC, §12.1.2) or from the
INVITE and our local tag (UAS, §12.1.1) and builds in-dialog requests (§12.2.1.1),
including the ACK for a 2xx (§13.2.2.4: new branch, INVITE's CSeq number). Pure.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from gateway.adapters.sip.message import (
    NameAddr,
    SipRequest,
    SipResponse,
    SipUri,
    parse_name_addr,
    parse_uri,
)
from gateway.adapters.sip.transaction import new_branch
from gateway.errors import SipParseError


def new_tag() -> str:
    """A random From/To tag (RFC 3261 §19.3: at least 32 bits of randomness)."""
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    """A globally unique Call-ID (§8.1.1.4)."""
    return f"{secrets.token_hex(12)}@{host}"


def contact_uri(msg: SipRequest | SipResponse) -> str | None:
    """The URI of the first Contact, or None."""
    contacts = msg.get_all("Contact")
    if not contacts:
        return None
    return parse_name_addr(contacts[0]).uri


@dataclass
class Dialog:
    """State of one dialog (RFC 3261 §12).

    Attributes:
        call_id: Call-ID.
        local: our party (From in our requests) including our tag.
        remote: the peer's party (To in our requests) including its tag (may be "" early).
        local_seq: last CSeq number we used.
        remote_seq: last CSeq number received from the peer, or None.
        remote_target: the peer's Contact URI (Request-URI of our requests).
        route_set: Route values, in the order we put them in requests.
    """

    call_id: str
    local: NameAddr
    remote: NameAddr
    local_seq: int
    remote_seq: int | None
    remote_target: str
    route_set: list[str] = field(default_factory=list)

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    @classmethod
    def as_uac(cls, invite: SipRequest, resp: SipResponse) -> Dialog:
        """Dialog state from our INVITE and a 2xx/1xx-with-tag response (§12.1.2).

        Raises:
            SipParseError: the response has no Contact (required in a 2xx, §13.3.1.4).
        """
        target = contact_uri(resp)
        if target is None:
            if 200 <= resp.status < 300:
                raise SipParseError("2xx to INVITE has no Contact", call_id=invite.call_id)
            target = invite.uri
        routes = list(reversed(resp.get_all("Record-Route")))
        return cls(invite.call_id, invite.from_, resp.to, invite.cseq[0], None, target, routes)

    @classmethod
    def as_uas(cls, invite: SipRequest, local_tag: str) -> Dialog:
        """Dialog state from a received INVITE and the tag we put in our To (§12.1.1)."""
        target = contact_uri(invite)
        if target is None:
            raise SipParseError("INVITE has no Contact", call_id=invite.call_id)
        local = invite.to
        local.params["tag"] = local_tag
        return cls(invite.call_id, local, invite.from_, 0, invite.cseq[0], target,
                   list(invite.get_all("Record-Route")))

    def next_hop(self) -> SipUri:
        """Where in-dialog requests go: the first route (loose routing) or the target."""
        if self.route_set:
            return parse_uri(parse_name_addr(self.route_set[0]).uri)
        return parse_uri(self.remote_target)

    def request(self, method: str, *, via: str, contact: str, cseq: int | None = None,
                extra: list[tuple[str, str]] | None = None, body: bytes = b"",
                content_type: str = "application/sdp") -> SipRequest:
        """Build an in-dialog request (§12.2.1.1).

        Args:
            method: BYE, INVITE, ACK, INFO, OPTIONS...
            via: the Via value *without* branch; a new branch is appended.
            contact: our Contact URI.
            cseq: explicit CSeq number (ACK uses the INVITE's); otherwise local_seq + 1.
            extra: additional headers.
            body: body bytes; ``content_type`` is added when non-empty.
        """
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        uri = self.remote_target
        routes = list(self.route_set)
        if routes and "lr" not in parse_uri(parse_name_addr(routes[0]).uri).params:
            uri = parse_name_addr(routes[0]).uri  # strict router (§12.2.1.1)
            routes = [*routes[1:], f"<{self.remote_target}>"]
        req = SipRequest(method=method, uri=uri)
        req.headers += [("Via", f"{via};branch={new_branch()}"), ("Max-Forwards", "70"),
                        ("From", str(self.local)), ("To", str(self.remote)),
                        ("Call-ID", self.call_id), ("CSeq", f"{cseq} {method}")]
        req.headers += [("Route", r) for r in routes]
        if method not in ("ACK", "CANCEL", "BYE"):
            req.headers.append(("Contact", f"<{contact}>"))
        req.headers += extra or []
        if body:
            req.headers.append(("Content-Type", content_type))
            req.body = body
        return req
