"""The gateway's HTTP application (FastAPI): platform_api, session access URLs, health.

Routes: ``/platform_api`` (Voximplant-compatible methods), ``/sessions/...`` (session
access URLs), ``/logs/{session_id}`` (session logs), ``/records/{record_id}``
(recordings), ``/health``.

``create_app`` only assembles routes around objects it is given; ``gateway.server``
builds those objects and owns their lifecycle.
"""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api import access, logs, platform_api, recordings
from gateway.api.auth import Authenticator, authenticate
from gateway.api.responses import declare_responses
from gateway.runtime.records import ScenarioRunner
from gateway.settings import Settings
from gateway.store import Store


def create_app(*, store: Store, runner: ScenarioRunner, settings: Settings,
               authenticator: Authenticator | None = None) -> FastAPI:
    """Build the HTTP application.

    Args:
        store: the opened gateway store (``gateway.store.open_store``).
        runner: the runtime's ``ScenarioRunner`` (StartScenarios, access URLs).
        settings: gateway settings (``custom_data_max_bytes``, ...).
        authenticator: platform_api authentication; default :func:`gateway.api.auth.authenticate`
            (Bearer JWT of a service-account key, else ``account_id`` + ``api_key``).

    Returns:
        The FastAPI app; its OpenAPI document is at ``/openapi.json``.
    """
    app = FastAPI(title="voice-gateway", version="0.1.0",
                  description="Self-hosted Voice AI gateway with a Voximplant-compatible "
                              "management API (`/platform_api`).")
    app.state.store = store
    app.state.runner = runner
    app.state.settings = settings

    auth = authenticator or authenticate
    api = platform_api.PlatformApi(store=store, runner=runner, settings=settings,
                                   authenticator=auth)
    app.include_router(platform_api.build_router(api))
    app.include_router(access.build_router(runner))
    app.include_router(logs.build_router(store, runner, auth))
    app.include_router(recordings.build_router(store, settings, auth))

    @app.get("/health", tags=["health"], summary="Liveness probe")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    declare_responses(app)
    return app
