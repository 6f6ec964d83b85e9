"""Session log download: ``GET /logs/{session_id}`` (Voximplant's ``log_file_url``).

The log holds the session's ``Logger.write`` lines, its events, errors and handler
tracebacks. It is served with the same authentication as ``platform_api``
(``account_id`` + ``api_key`` parameters, or a service-account JWT in
``Authorization: Bearer``; a failure is HTTP 401 with the platform error body), and
only to the account the session belongs to: any other account gets the same 404 as
an unknown session.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway.api.auth import Authenticator
from gateway.api.errors import AUTHORIZATION_FAILED, PlatformError
from gateway.api.params import read_params
from gateway.runtime.records import ScenarioRunner
from gateway.store import Store


def build_router(store: Store, runner: ScenarioRunner,
                 authenticator: Authenticator) -> APIRouter:
    """The ``/logs/{session_id}`` route, authenticated like ``platform_api``."""
    router = APIRouter(tags=["sessions"])

    @router.get("/logs/{session_id}", summary="Download a session log (text/plain)",
                responses={404: {"description": "No such session in this account"}})
    async def session_log(request: Request, session_id: str) -> Response:
        try:
            params = await read_params(request)
            headers = {k.lower(): v for k, v in request.headers.items()}
            account = await authenticator(params, headers, store)
        except PlatformError as exc:
            status = 401 if exc.code == AUTHORIZATION_FAILED else 400
            return JSONResponse(exc.body(), status_code=status)
        text = await runner.session_log(account.account_id, session_id)
        if text is None:
            return Response(b"session log not found\n", status_code=404, media_type="text/plain")
        return Response(text.encode("utf-8"), media_type="text/plain; charset=utf-8")

    return router
