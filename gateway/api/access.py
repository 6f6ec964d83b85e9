"""Session access URLs (Voximplant's ``media_session_access_url``).

``ANY /sessions/{session_id}/{secret}[/{path}]`` hands the request to the runtime,
which checks the secret and fires ``AppEvents.HttpRequest`` in the session; the
scenario's reply is returned as is. There is no other authentication: the secret in
the URL is the credential.

The runtime receives ``path`` as the part after the secret with a leading ``/``
(``"/"`` when empty) plus ``?query`` when the URL has a query string.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from gateway.runtime.records import ScenarioRunner

log = logging.getLogger(__name__)

ACCESS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

#: Documented replies of an access URL (the body is whatever the scenario returned).
ACCESS_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "The HttpRequest handler's value: str/bytes as-is, dict/list as "
                         "JSON.", "content": {"*/*": {}}},
    204: {"description": "The handler returned None."},
    404: {"description": "Unknown or ended session, or wrong secret.",
          "content": {"text/plain": {}}},
    500: {"description": "The handler raised.", "content": {"text/plain": {}}},
    504: {"description": "The handler did not answer in time.",
          "content": {"text/plain": {}}},
}


def build_router(runner: ScenarioRunner) -> APIRouter:
    """Routes of the session access URLs, delivering to ``runner.access_request``."""
    router = APIRouter(tags=["sessions"])

    async def access(request: Request, session_id: str, secret: str,
                     path: str = "") -> Response:
        sub_path = "/" + path.lstrip("/")
        if request.url.query:
            sub_path += "?" + request.url.query
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = await request.body()
        try:
            reply = await runner.access_request(session_id, secret, request.method, sub_path,
                                                body, headers)
        except Exception:
            log.exception("access request to session %s failed", session_id)
            return Response(b"internal error\n", status_code=500, media_type="text/plain")
        return Response(reply.body, status_code=reply.status,
                        headers={"content-type": reply.content_type})

    description = ("Deliver an HTTP request to a running session (AppEvents.HttpRequest). "
                   "The secret comes from StartScenarios' media_session_access_url.")
    for suffix, label in (("", "session_access"), ("/{path:path}", "session_access_path")):
        for method in ACCESS_METHODS:
            router.add_api_route(
                "/sessions/{session_id}/{secret}" + suffix, access, methods=[method],
                summary=f"Session access URL ({method})", description=description,
                operation_id=f"{label}_{method.lower()}", responses=ACCESS_RESPONSES,
                include_in_schema=method in ("GET", "POST"))
    return router
