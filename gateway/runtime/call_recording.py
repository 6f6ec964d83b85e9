"""Call recording (VoxEngine ``Call.record``), as a mixin of :class:`gateway.runtime.call.Call`.

Not built yet: recording is a separate piece of issue 4.
"""

from __future__ import annotations


class CallRecording:
    """``record`` / ``stop_recording`` for a call (mixin)."""
