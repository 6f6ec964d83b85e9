"""Typed errors shared by every layer of the gateway."""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of every error raised by the gateway.

    Args:
        message: human readable description.
        session_id: the session the error belongs to, when known.
        call_id: the call leg the error belongs to, when known.
    """

    def __init__(self, message: str, *, session_id: str | None = None, call_id: str | None = None):
        super().__init__(message)
        self.session_id = session_id
        self.call_id = call_id


class MediaError(GatewayError):
    """Bad audio: unknown format, wrong frame size, a codec failure."""


class SipError(GatewayError):
    """SIP signalling failure."""


class SipParseError(SipError):
    """A SIP message or SDP body could not be parsed (RFC 3261 §7, RFC 4566)."""


class ScenarioError(GatewayError):
    """A scenario failed to compile or raised at run time."""


class LimitExceeded(GatewayError):
    """A per-session or per-account limit was hit."""
