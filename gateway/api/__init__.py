"""HTTP API of the gateway: Voximplant-compatible ``/platform_api``, session access URLs, health.

Use :func:`create_app`.
"""

from gateway.api.app import create_app

__all__ = ["create_app"]
