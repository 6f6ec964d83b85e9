"""SIP user agent (RFC 3261) over asyncio UDP and TCP, with RTP media per leg.

Public entry points: :class:`~gateway.adapters.sip.adapter.SipAdapter` and
:class:`~gateway.adapters.sip.leg.SipLeg` (import them from their modules).
"""
