"""``VoxEngine`` B2BUA helpers: ``easy_process``, ``forward_call_to_sip``,
``forward_call_to_pstn`` (a mixin of :class:`gateway.runtime.voxengine.VoxEngineFacade`).

Not built yet: call control is a separate piece of issue 4.
"""

from __future__ import annotations


class CallControlFactories:
    """B2BUA helpers of the VoxEngine facade (mixin)."""
