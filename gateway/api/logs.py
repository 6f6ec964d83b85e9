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

from gateway.api.auth import Authenticator, Principal, authorization_failed
from gateway.api.errors import AUTHORIZATION_FAILED, PlatformError
from gateway.api.params import read_params
from gateway.api.responses import ERROR_BODY
from gateway.runtime.records import ScenarioRunner
from gateway.store import Store
from gateway.store.keys import Permission


async def reader(request: Request, store: Store,
                 authenticator: Authenticator) -> Principal | Response:
    """Authenticate a download (session log, recording) like ``platform_api``: the
    principal when it may read, else the error response (401 bad credentials or no
    read permission, 400 malformed parameters)."""
    try:
        params = await read_params(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        principal = await authenticator(params, headers, store)
        if principal.permission < Permission.READ:
            raise authorization_failed()
    except PlatformError as exc:
        status = 401 if exc.code == AUTHORIZATION_FAILED else 400
        return JSONResponse(exc.body(), status_code=status)
    return principal


def build_router(store: Store, runner: ScenarioRunner,
                 authenticator: Authenticator) -> APIRouter:
    """The ``/logs/{session_id}`` route, authenticated like ``platform_api``."""
    router = APIRouter(tags=["sessions"])

    error = {"application/json": {"schema": ERROR_BODY}}
    text = {"text/plain": {"schema": {"type": "string"}}}

    @router.get("/logs/{session_id}", summary="Download a session log (text/plain)",
                response_class=Response,
                responses={200: {"description": "The log", "content": text},
                           400: {"description": "Malformed parameters", "content": error},
                           401: {"description": "Authorization failed", "content": error},
                           404: {"description": "No such session in this account",
                                 "content": text}})
    async def session_log(request: Request, session_id: str) -> Response:
        principal = await reader(request, store, authenticator)
        if isinstance(principal, Response):
            return principal
        text = await runner.session_log(principal.account.account_id, session_id)
        if text is None:
            return Response(b"session log not found\n", status_code=404, media_type="text/plain")
        return Response(text.encode("utf-8"), media_type="text/plain; charset=utf-8")

    return router
