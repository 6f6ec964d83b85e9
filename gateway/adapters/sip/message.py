"""SIP messages: a pure parser and serializer (RFC 3261 §7, §20, §25; RFC 4475 torture cases).

Nothing here touches sockets. :func:`parse_message` turns one datagram into a
:class:`SipRequest` or :class:`SipResponse`; :class:`StreamFramer` cuts a TCP byte
stream into messages by ``Content-Length`` (RFC 3261 §18.3). Header names are kept
as received (compact forms are expanded, §7.3.3), looked up case-insensitively.
Malformed input raises :class:`~gateway.errors.SipParseError` with a precise message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.errors import SipParseError

SIP_VERSION = "SIP/2.0"
MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: CSeq sequence number is < 2**31

#: RFC 3261 §7.3.3 compact forms (plus RFC 3265/3515/4028 ones seen in the wild).
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "u": "Allow-Events",
}

#: Canonical spelling for well-known headers (used when we serialize).
_CANONICAL = {
    name.lower(): name
    for name in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route",
        "Record-Route", "Content-Type", "Content-Length", "User-Agent", "Server", "Allow",
        "Supported", "WWW-Authenticate", "Proxy-Authenticate", "Authorization",
        "Proxy-Authorization", "Expires", "Accept", "Reason", "Require", "Unsupported",
        "Content-Encoding", "Subject", "Event", "Refer-To", "Referred-By",
        "Session-Expires", "Allow-Events", "Warning",
    )
}

#: Headers whose value may be a comma separated list (RFC 3261 §7.3.1).
_LIST_HEADERS = frozenset(
    {"via", "route", "record-route", "contact", "allow", "supported", "require",
     "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language"}
)

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_REQUEST_LINE_RE = re.compile(r"^([A-Za-z0-9\-.!%*_+`'~]+) +(\S+) +(SIP/\d+\.\d+)$")
_STATUS_LINE_RE = re.compile(r"^(SIP/\d+\.\d+) +(\d{3}) ?(.*)$")


def canonical_name(name: str) -> str:
    """Expand a compact form and give a well-known header its usual spelling."""
    low = name.lower()
    if low in COMPACT_FORMS:
        return COMPACT_FORMS[low]
    return _CANONICAL.get(low, name)


def split_commas(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and ``<...>`` (RFC 3261 §7.3.1)."""
    parts: list[str] = []
    cur: list[str] = []
    in_quote = in_angle = False
    i = 0
    while i < len(value):
        ch = value[i]
        if in_quote:
            cur.append(ch)
            if ch == "\\" and i + 1 < len(value):
                cur.append(value[i + 1])
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
            cur.append(ch)
        elif ch == "<":
            in_angle = True
            cur.append(ch)
        elif ch == ">":
            in_angle = False
            cur.append(ch)
        elif ch == "," and not in_angle:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    last = "".join(cur).strip()
    if last or parts:
        parts.append(last)
    return [p for p in parts if p]


@dataclass
class SipMessage:
    """Headers and body shared by requests and responses.

    Attributes:
        headers: ordered ``(name, value)`` pairs, names as received (compact forms expanded).
        body: raw body bytes (``Content-Length`` is recomputed on serialization).
    """

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    # -- header access -------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of header ``name`` (case-insensitive, compact forms accepted)."""
        low = canonical_name(name).lower()
        for n, v in self.headers:
            if n.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list headers (Via, Route, Contact...) split on commas."""
        low = canonical_name(name).lower()
        out: list[str] = []
        for n, v in self.headers:
            if n.lower() == low:
                out.extend(split_commas(v) if low in _LIST_HEADERS else [v])
        return out

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one with ``value`` (in place of the first)."""
        name = canonical_name(name)
        low = name.lower()
        for i, (n, _) in enumerate(self.headers):
            if n.lower() == low:
                self.headers[i] = (name, value)
                self.headers = [h for j, h in enumerate(self.headers)
                                if j <= i or h[0].lower() != low]
                return
        self.headers.append((name, value))

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append (or prepend, for a new top Via) one header."""
        entry = (canonical_name(name), value)
        if first:
            self.headers.insert(0, entry)
        else:
            self.headers.append(entry)

    def remove(self, name: str) -> None:
        """Drop every ``name`` header."""
        low = canonical_name(name).lower()
        self.headers = [h for h in self.headers if h[0].lower() != low]

    def x_headers(self) -> dict[str, str]:
        """The custom ``X-`` headers, original case, first value of each."""
        out: dict[str, str] = {}
        for n, v in self.headers:
            if n[:2].lower() == "x-" and n not in out:
                out[n] = v
        return out

    # -- well-known fields ---------------------------------------------------------
    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """``(sequence number, method)`` of the CSeq header (RFC 3261 §20.16)."""
        return parse_cseq(self.get("CSeq") or "")

    @property
    def top_via(self) -> Via:
        vias = self.get_all("Via")
        if not vias:
            raise SipParseError("missing Via header", call_id=self.call_id or None)
        return parse_via(vias[0])

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.get("To") or "")

    def _start_line(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Bytes on the wire: start line, headers, a fresh ``Content-Length``, body."""
        lines = [self._start_line()]
        lines.extend(f"{n}: {v}" for n, v in self.headers if n.lower() != "content-length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class SipRequest(SipMessage):
    """A SIP request (RFC 3261 §7.1)."""

    method: str = ""
    uri: str = ""

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri} call-id={self.call_id}>"


@dataclass
class SipResponse(SipMessage):
    """A SIP response (RFC 3261 §7.2)."""

    status: int = 0
    reason: str = ""

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason} call-id={self.call_id}>"


# --------------------------------------------------------------------------------
# Header value grammar
# --------------------------------------------------------------------------------
def parse_params(text: str) -> dict[str, str | None]:
    """``;a=b;c`` -> ``{"a": "b", "c": None}``; names lower-cased, quotes kept off."""
    params: dict[str, str | None] = {}
    for part in _split_semicolons(text):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            k, v = part.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1]
            params[k.strip().lower()] = v
        else:
            params[part.lower()] = None
    return params


def _split_semicolons(text: str) -> list[str]:
    out, cur, quote = [], [], False
    for ch in text:
        if ch == '"':
            quote = not quote
        if ch == ";" and not quote:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def format_params(params: dict[str, str | None]) -> str:
    """Inverse of :func:`parse_params` (leading ``;`` included when non-empty)."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass
class SipUri:
    """``sip:user@host:port;params?headers`` (RFC 3261 §19.1)."""

    scheme: str
    user: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""
    password: str | None = None

    @property
    def transport(self) -> str:
        """``udp`` or ``tcp`` from ``;transport=`` (default udp; ``sips`` is not supported)."""
        return (self.params.get("transport") or "udp").lower()

    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        userinfo = ""
        if self.user:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        hdrs = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host_port()}{format_params(self.params)}{hdrs}"


def parse_uri(text: str) -> SipUri:
    """Parse a SIP or SIPS URI; raises :class:`SipParseError` on anything else."""
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() not in ("sip", "sips"):
        raise SipParseError(f"unsupported URI (want sip: or sips:): {text!r}")
    headers = ""
    if "?" in rest:
        rest, headers = rest.split("?", 1)
    user, password = "", None
    if "@" in rest:
        userinfo, rest = rest.rsplit("@", 1)
        user, _, pw = userinfo.partition(":")
        password = pw if _ else None
    hostport, _, param_text = rest.partition(";")
    params = parse_params(param_text)
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in URI {text!r}")
        host, port_text = hostport[1:end], hostport[end + 1:].lstrip(":")
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise SipParseError(f"URI has no host: {text!r}")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port {port_text!r} in URI {text!r}")
        port = int(port_text)
    return SipUri(scheme.lower(), user, host, port, params, headers, password)


@dataclass
class NameAddr:
    """``"Display" <uri>;params`` as in From/To/Contact/Route (RFC 3261 §20.10, §25.1)."""

    display: str
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        disp = f'"{self.display}" ' if self.display else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``name-addr`` or ``addr-spec`` with header parameters."""
    text = text.strip()
    if not text:
        raise SipParseError("empty name-addr")
    lt = _find_unquoted(text, "<")
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"unterminated '<' in {text!r}")
        display = text[:lt].strip()
        if display.startswith('"'):
            if len(display) < 2 or not display.endswith('"'):
                raise SipParseError(f"unterminated quoted display name in {text!r}")
            display = display[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        uri = text[lt + 1:gt].strip()
        params = parse_params(text[gt + 1:].lstrip().lstrip(";"))
    else:
        # addr-spec: parameters after the URI belong to the header (RFC 3261 §20.10)
        uri, _, rest = text.partition(";")
        display, params = "", parse_params(rest)
        uri = uri.strip()
    if not uri:
        raise SipParseError(f"no URI in {text!r}")
    return NameAddr(display, uri, params)


def _find_unquoted(text: str, ch: str) -> int:
    quote = False
    i = 0
    while i < len(text):
        c = text[i]
        if quote and c == "\\":
            i += 2
            continue
        if c == '"':
            quote = not quote
        elif c == ch and not quote:
            return i
        i += 1
    return -1


@dataclass
class Via:
    """One Via value (RFC 3261 §20.42, RFC 3581 rport)."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str:
        return self.params.get("branch") or ""

    def sent_by(self) -> str:
        return f"{self.host}:{self.port or 5060}"


def parse_via(text: str) -> Via:
    """Parse ``SIP/2.0/UDP host:port;branch=...``."""
    m = re.match(r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;\s]+)\s*(.*)$", text, re.S)
    if not m:
        raise SipParseError(f"malformed Via: {text!r}")
    transport, hostport, rest = m.group(1).upper(), m.group(2), m.group(3)
    if hostport.startswith("["):
        end = hostport.find("]")
        host, port_text = hostport[1:end], hostport[end + 1:].lstrip(":")
    else:
        host, _, port_text = hostport.partition(":")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port in Via: {text!r}")
        port = int(port_text)
    return Via(transport, host, port, parse_params(rest.strip().lstrip(";")))


def parse_cseq(text: str) -> tuple[int, str]:
    """``"314159 INVITE"`` -> ``(314159, "INVITE")``; range-checked (RFC 3261 §8.1.1.5)."""
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise SipParseError(f"malformed CSeq: {text!r}")
    num = int(parts[0])
    if num > MAX_CSEQ:
        raise SipParseError(f"CSeq number {num} is not below 2**31")
    if not _TOKEN_RE.match(parts[1]):
        raise SipParseError(f"malformed CSeq method: {parts[1]!r}")
    return num, parts[1]


# --------------------------------------------------------------------------------
# Message parsing
# --------------------------------------------------------------------------------
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return data[:idx], data[idx + 4:]
    idx = data.find(b"\n\n")  # tolerate bare LF line ends
    if idx >= 0:
        return data[:idx], data[idx + 2:]
    return data.rstrip(b"\r\n"), b""


def parse_message(data: bytes, *, stream: bool = False) -> SipRequest | SipResponse:
    """Parse one complete SIP message.

    Args:
        data: the datagram (or one framed TCP message).
        stream: True for stream transports, where ``Content-Length`` is mandatory.

    Returns:
        The request or response, with the body cut to ``Content-Length``.

    Raises:
        SipParseError: the message is malformed; the text says what and where.
    """
    data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: ignore CRLFs before the start line
    if not data:
        raise SipParseError("empty message")
    head, body = _split_head(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"message head is not UTF-8 (byte {exc.start})") from None
    lines = re.split(r"\r?\n", text)
    start = lines[0]
    msg: SipRequest | SipResponse
    if start.startswith("SIP/"):
        m = _STATUS_LINE_RE.match(start)
        if not m:
            raise SipParseError(f"malformed status line: {start!r}")
        if m.group(1) != SIP_VERSION:
            raise SipParseError(f"unsupported SIP version {m.group(1)!r}")
        status = int(m.group(2))
        if not 100 <= status <= 699:
            raise SipParseError(f"status code {status} out of range 100-699")
        msg = SipResponse(status=status, reason=m.group(3).strip())
    else:
        m = _REQUEST_LINE_RE.match(start)
        if not m:
            raise SipParseError(f"malformed request line: {start!r}")
        if m.group(3) != SIP_VERSION:
            raise SipParseError(f"unsupported SIP version {m.group(3)!r}")
        uri = m.group(2)
        if ":" not in uri:
            raise SipParseError(f"Request-URI has no scheme: {uri!r}")
        msg = SipRequest(method=m.group(1), uri=uri)
    headers = _parse_header_lines(lines[1:])
    msg.headers = headers
    for name in _REQUIRED:
        if msg.get(name) is None:
            raise SipParseError(f"missing mandatory {name} header", call_id=msg.get("Call-ID"))
    _cseq_num, cseq_method = msg.cseq
    if isinstance(msg, SipRequest) and cseq_method != msg.method:
        raise SipParseError(
            f"CSeq method {cseq_method} does not match request method {msg.method}",
            call_id=msg.call_id)
    cl_text = msg.get("Content-Length")
    if cl_text is None:
        if stream:
            raise SipParseError("missing Content-Length on a stream transport", call_id=msg.call_id)
        msg.body = body
    else:
        cl_text = cl_text.strip()
        if not cl_text.isdigit():
            raise SipParseError(f"bad Content-Length {cl_text!r}", call_id=msg.call_id)
        length = int(cl_text)
        if length > len(body):
            raise SipParseError(
                f"Content-Length {length} exceeds the {len(body)} body bytes received",
                call_id=msg.call_id)
        msg.body = body[:length]
    return msg


def _parse_header_lines(lines: list[str]) -> list[tuple[str, str]]:
    unfolded: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not unfolded:
                raise SipParseError("header continuation line before the first header")
            unfolded[-1] += " " + line.strip()
        elif line:
            unfolded.append(line)
    headers: list[tuple[str, str]] = []
    for line in unfolded:
        name, sep, value = line.partition(":")
        if not sep:
            raise SipParseError(f"header line without ':': {line[:60]!r}")
        name = name.rstrip(" \t")
        if not _TOKEN_RE.match(name):
            raise SipParseError(f"invalid header name {name!r}")
        headers.append((canonical_name(name), " ".join(value.split())))
    return headers


class StreamFramer:
    """Cuts a TCP byte stream into SIP messages by ``Content-Length`` (RFC 3261 §18.3).

    Feed bytes with :meth:`feed`; it returns the complete raw messages found. Keep-alive
    CRLFs between messages (RFC 5626 §3.5.1) are skipped.
    """

    MAX_HEAD = 64 * 1024

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the raw bytes of each complete message.

        Raises:
            SipParseError: a head without a valid Content-Length, or an oversized head;
                the stream cannot be resynchronised and should be closed.
        """
        self._buf += data
        out: list[bytes] = []
        while True:
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self.MAX_HEAD:
                    raise SipParseError("message head longer than 64 KiB on stream")
                return out
            head = bytes(self._buf[:end])
            m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$", head)
            if not m or not m.group(1).isdigit():
                raise SipParseError("missing or bad Content-Length on a stream transport")
            total = end + 4 + int(m.group(1))
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]


def make_response(request: SipRequest, status: int, reason: str, *,
                  to_tag: str | None = None, extra: list[tuple[str, str]] | None = None,
                  body: bytes = b"", content_type: str | None = None) -> SipResponse:
    """Build a response to ``request`` per RFC 3261 §8.2.6.2.

    Copies Via (all values, in order), From, Call-ID, CSeq; To gets ``to_tag`` unless
    it already has one (never for 100 Trying).
    """
    resp = SipResponse(status=status, reason=reason)
    for n, v in request.headers:
        if n.lower() == "via":
            resp.headers.append(("Via", v))
    resp.headers.append(("From", request.get("From") or ""))
    to = request.get("To") or ""
    if to_tag and status != 100 and "tag" not in parse_name_addr(to).params:
        to = f"{to};tag={to_tag}"
    resp.headers.append(("To", to))
    resp.headers.append(("Call-ID", request.call_id))
    resp.headers.append(("CSeq", request.get("CSeq") or ""))
    for n, v in extra or []:
        resp.headers.append((canonical_name(n), v))
    if body:
        resp.headers.append(("Content-Type", content_type or "application/sdp"))
        resp.body = body
    return resp
