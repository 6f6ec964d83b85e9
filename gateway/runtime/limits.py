"""Per-session call limits and the leg that stands in for a refused call.

A session may make at most :data:`MAX_CALL_ATTEMPTS` outbound call attempts
(``call_sip``/``call_pstn``) and have at most :data:`MAX_UNANSWERED_CALLS` outbound
calls unanswered (dialling or ringing) at once. The attempt that exceeds either limit
still returns a :class:`~gateway.runtime.call.Call`, as a SIP failure would: nothing is
sent on the wire, and the call fails asynchronously (on the next loop iteration, so
listeners added right after ``call_sip`` hear it) with ``CallEvents.Failed``, code 403,
reason :data:`CALL_LIMIT_REASON`.
"""

from __future__ import annotations

import uuid

from gateway.media.format import AudioFormat, AudioFrame
from gateway.runtime.leg import LegListener

#: Outbound call attempts one session may make.
MAX_CALL_ATTEMPTS = 50
#: Outbound calls one session may have unanswered at once.
MAX_UNANSWERED_CALLS = 10
#: SIP code and reason of a call refused by a limit.
CALL_LIMIT_CODE = 403
CALL_LIMIT_REASON = "Call limit reached"


class RefusedLeg:
    """A :class:`~gateway.runtime.leg.CallLeg` that never reaches the network.

    :meth:`fail` reports ``leg_failed(403, "Call limit reached")`` to the listener once.
    """

    incoming = False
    display_name = ""
    media_format: AudioFormat | None = None

    def __init__(self, uri: str, callerid: str, headers: dict[str, str] | None) -> None:
        self.id = uuid.uuid4().hex
        self.number = uri
        self.callerid = callerid
        self.headers = dict(headers or {})
        self.listener: LegListener | None = None
        self._failed = False

    def fail(self) -> None:
        """Report the failure (once)."""
        if not self._failed and self.listener is not None:
            self._failed = True
            self.listener.leg_failed(CALL_LIMIT_CODE, CALL_LIMIT_REASON, {})

    async def ring(self) -> None:
        return None

    async def answer(self, headers: dict[str, str] | None = None) -> None:
        return None

    async def reject(self, code: int = 486, reason: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
        return None

    async def hangup(self, headers: dict[str, str] | None = None) -> None:
        self.fail()

    def play(self, frame: AudioFrame) -> None:
        return None

    def clear_playout(self) -> None:
        return None

    @property
    def played_ms(self) -> float:
        return 0.0

    @property
    def queued_ms(self) -> float:
        return 0.0

    def send_digits(self, digits: str) -> None:
        return None

    async def start_early_media(self, headers: dict[str, str] | None = None) -> None:
        return None

    async def refer(self, target: str, headers: dict[str, str] | None = None) -> None:
        return None

    async def send_message(self, text: str, headers: dict[str, str] | None = None) -> None:
        return None

    async def send_info(self, mime_type: str, body: str | bytes,
                        headers: dict[str, str] | None = None) -> None:
        return None
