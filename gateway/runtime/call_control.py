"""Call control beyond answer/hangup (transfer, SIP MESSAGE and INFO), as a mixin of
:class:`gateway.runtime.call.Call`.

Not built yet: call control is a separate piece of issue 4.
"""

from __future__ import annotations


class CallControl:
    """``transfer_to`` / ``send_message`` / ``send_info`` for a call (mixin)."""
