"""SDP for audio calls: parse, offer, answer (RFC 4566, RFC 3264, RFC 3551, RFC 4733).

The gateway speaks G.711 only: PCMU (static PT 0) and PCMA (static PT 8), 8000 Hz,
20 ms packets, plus ``telephone-event/8000`` (dynamic PT, 101 by default,
``a=fmtp:101 0-16``) for DTMF. The answerer picks the first codec of the offer that
it supports (the offerer's preference order, RFC 3264 §6.1). Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

from gateway.errors import SipError, SipParseError
from gateway.media.format import PCMA_8K, PCMU_8K, AudioFormat

DEFAULT_DTMF_PT = 101
PTIME_MS = 20
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000), 3: ("GSM", 8000),
           18: ("G729", 8000), 13: ("CN", 8000), 4: ("G723", 8000)}
_SUPPORTED = {"PCMU": PCMU_8K, "PCMA": PCMA_8K}


class NoCommonCodec(SipError):
    """The offer has no audio codec we support (the UAS answers 488, RFC 3261 §13.3.1.3)."""


@dataclass
class MediaDescription:
    """One ``m=`` section (RFC 4566 §5.14) with the attributes we use."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str | None = None
    ptime: int | None = None

    def codec(self, pt: int) -> tuple[str, int] | None:
        """``(encoding name upper-cased, clock rate)`` of payload type ``pt``."""
        if pt in self.rtpmap:
            name, rate = self.rtpmap[pt]
            return name.upper(), rate
        return _STATIC.get(pt)


@dataclass
class SessionDescription:
    """A parsed SDP body."""

    origin: str
    session_name: str
    connection: str | None
    media: list[MediaDescription]
    direction: str | None = None

    def audio(self) -> MediaDescription | None:
        """The first active RTP/AVP audio stream, or None."""
        for m in self.media:
            if m.media == "audio" and m.port != 0 and m.proto.upper() == "RTP/AVP":
                return m
        return None


@dataclass(frozen=True)
class MediaParams:
    """The negotiated result: where to send RTP and how.

    Attributes:
        remote: ``(address, port)`` of the remote RTP endpoint.
        payload_type: RTP payload type of the chosen audio codec.
        format: PCMU_8K or PCMA_8K.
        dtmf_payload_type: telephone-event PT agreed, or None.
        direction: our direction (``sendrecv``, ``recvonly``...).
    """

    remote: tuple[str, int]
    payload_type: int
    format: AudioFormat
    dtmf_payload_type: int | None
    direction: str = "sendrecv"


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body (RFC 4566 §5).

    Raises:
        SipParseError: not SDP, missing ``v=``/``o=``/``m=`` lines, bad ports or payload types.
    """
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SipParseError(f"SDP is not UTF-8 (byte {exc.start})") from None
    lines = [ln.strip() for ln in body.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines or lines[0] != "v=0":
        raise SipParseError("SDP must start with 'v=0'")
    origin = session_name = ""
    sess_conn: str | None = None
    sess_dir: str | None = None
    media: list[MediaDescription] = []
    for n, line in enumerate(lines, 1):
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SipParseError(f"SDP line {n} is not 'x=value': {line[:40]!r}")
        key, value = line[0], line[2:]
        cur = media[-1] if media else None
        if key == "o":
            origin = value
        elif key == "s":
            session_name = value
        elif key == "c":
            addr = _parse_connection(value, n)
            if cur is None:
                sess_conn = addr
            else:
                cur.connection = addr
        elif key == "m":
            media.append(_parse_m_line(value, n))
        elif key == "a":
            name, _, arg = value.partition(":")
            if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                if cur is None:
                    sess_dir = name
                else:
                    cur.direction = name
            elif cur is None:
                continue
            elif name == "rtpmap":
                pt_text, _, enc = arg.partition(" ")
                parts = enc.strip().split("/")
                if not pt_text.isdigit() or len(parts) < 2 or not parts[1].isdigit():
                    raise SipParseError(f"SDP line {n}: bad rtpmap {arg!r}")
                cur.rtpmap[int(pt_text)] = (parts[0], int(parts[1]))
            elif name == "fmtp":
                pt_text, _, params = arg.partition(" ")
                if pt_text.isdigit():
                    cur.fmtp[int(pt_text)] = params.strip()
            elif name == "ptime" and arg.strip().isdigit():
                cur.ptime = int(arg.strip())
    if not origin:
        raise SipParseError("SDP has no 'o=' line")
    if not media:
        raise SipParseError("SDP has no 'm=' line")
    for m in media:
        if m.port and m.media == "audio" and (m.connection or sess_conn) is None:
            raise SipParseError("SDP audio stream has no 'c=' connection address")
        if m.connection is None:
            m.connection = sess_conn
        if m.direction is None:
            m.direction = sess_dir
    return SessionDescription(origin, session_name, sess_conn, media, sess_dir)


def _parse_connection(value: str, n: int) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SipParseError(f"SDP line {n}: bad connection 'c={value}'")
    addr = parts[2].split("/")[0]
    if parts[1] == "IP4":
        try:
            ipaddress.IPv4Address(addr)
        except ValueError:
            if not addr.replace(".", "").replace("-", "").isalnum():
                raise SipParseError(f"SDP line {n}: bad IPv4 address {addr!r}") from None
    return addr


def _parse_m_line(value: str, n: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SipParseError(f"SDP line {n}: 'm=' needs media, port, proto and formats")
    port_text = parts[1].split("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SipParseError(f"SDP line {n}: bad media port {parts[1]!r}")
    m = MediaDescription(parts[0], int(port_text), parts[2], parts[3:])
    if m.proto.upper().startswith("RTP/"):
        for f in m.formats:
            if not f.isdigit() or int(f) > 127:
                raise SipParseError(f"SDP line {n}: bad RTP payload type {f!r}")
    return m


def _session_lines(host: str, session_id: int, version: int) -> list[str]:
    ip = "IP6" if ":" in host else "IP4"
    return ["v=0", f"o=voice-gateway {session_id} {version} IN {ip} {host}", "s=voice-gateway",
            f"c=IN {ip} {host}", "t=0 0"]


def build_offer(host: str, port: int, *, session_id: int | None = None, version: int = 1,
                dtmf_payload_type: int = DEFAULT_DTMF_PT) -> bytes:
    """An SDP offer: PCMU, PCMA and telephone-event, ptime 20, sendrecv (RFC 3264 §5).

    Args:
        host: our RTP address (also the ``o=``/``c=`` address).
        port: our RTP port (even; RTCP is port+1).
        session_id: ``o=`` session id; default: now in NTP-ish seconds.
        version: ``o=`` version.
        dtmf_payload_type: telephone-event PT to offer.
    """
    sid = session_id if session_id is not None else int(time.time())
    lines = _session_lines(host, sid, version)
    dt = dtmf_payload_type
    lines += [f"m=audio {port} RTP/AVP 0 8 {dt}", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
              f"a=rtpmap:{dt} telephone-event/8000", f"a=fmtp:{dt} 0-16",
              f"a=ptime:{PTIME_MS}", "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode()


_ANSWER_DIR = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


def choose(offer: SessionDescription) -> MediaParams:
    """Pick codec, DTMF PT and remote address from an offer (the answerer's view).

    Raises:
        NoCommonCodec: no active RTP/AVP audio stream, or no PCMU/PCMA in it.
    """
    audio = offer.audio()
    if audio is None:
        raise NoCommonCodec("offer has no active RTP/AVP audio stream")
    chosen: tuple[int, AudioFormat] | None = None
    dtmf: int | None = None
    for f in audio.formats:
        pt = int(f)
        codec = audio.codec(pt)
        if codec is None:
            continue
        name, rate = codec
        if chosen is None and name in _SUPPORTED and rate == 8000:
            chosen = (pt, _SUPPORTED[name])
        elif name == "TELEPHONE-EVENT" and rate == 8000 and dtmf is None:
            dtmf = pt
    if chosen is None:
        names = [("/".join(map(str, audio.codec(int(f)) or (f,)))) for f in audio.formats]
        raise NoCommonCodec(f"no common audio codec (offered: {', '.join(names)})")
    assert audio.connection is not None
    return MediaParams((audio.connection, audio.port), chosen[0], chosen[1], dtmf,
                       _ANSWER_DIR.get(audio.direction or "sendrecv", "sendrecv"))


def build_answer(offer: SessionDescription, params: MediaParams, host: str, port: int, *,
                 session_id: int | None = None, version: int = 1) -> bytes:
    """The SDP answer to ``offer`` for the choice ``params`` (RFC 3264 §6).

    Every offered ``m=`` line is answered in order; streams other than the chosen audio
    one are rejected with port 0.
    """
    sid = session_id if session_id is not None else int(time.time())
    lines = _session_lines(host, sid, version)
    audio = offer.audio()
    for m in offer.media:
        if m is not audio:
            lines.append(f"m={m.media} 0 {m.proto} {' '.join(m.formats)}")
            continue
        pts = [params.payload_type]
        if params.dtmf_payload_type is not None:
            pts.append(params.dtmf_payload_type)
        lines.append(f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}")
        enc = "PCMU" if params.format == PCMU_8K else "PCMA"
        lines.append(f"a=rtpmap:{params.payload_type} {enc}/8000")
        if params.dtmf_payload_type is not None:
            dt = params.dtmf_payload_type
            lines += [f"a=rtpmap:{dt} telephone-event/8000", f"a=fmtp:{dt} 0-16"]
        lines += [f"a=ptime:{PTIME_MS}", f"a={params.direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def negotiate(offer_body: bytes, host: str, port: int, *,
              session_id: int | None = None) -> tuple[MediaParams, bytes]:
    """Parse an offer and build our answer in one step.

    Returns:
        ``(media parameters, answer body)``.

    Raises:
        SipParseError: the offer is not valid SDP.
        NoCommonCodec: nothing acceptable in it.
    """
    offer = parse_sdp(offer_body)
    params = choose(offer)
    return params, build_answer(offer, params, host, port, session_id=session_id)


def parse_answer(answer_body: bytes) -> MediaParams:
    """Read the answer to our offer: the first supported codec it lists is used.

    Raises:
        SipParseError: not valid SDP.
        NoCommonCodec: the answer picked nothing we offered.
    """
    return choose(parse_sdp(answer_body))
