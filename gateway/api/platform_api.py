"""The Voximplant-compatible management endpoint, ``/platform_api``.

Follows Voximplant's HTTP API transport: a method is called as
``POST /platform_api`` with a ``cmd`` field, or as ``/platform_api/{Method}/``; GET
with a query string works too. Parameters come form-encoded, as a JSON object or in
the query string (:mod:`gateway.api.params`). The caller is authenticated by
:mod:`gateway.api.auth` and must hold the method's permission
(:attr:`gateway.api.registry.MethodSpec.permission`; error 9010 otherwise). Every
reply is JSON with HTTP 200:
``{"result": ...}`` or ``{"error": {"code", "msg"}}`` (codes in
:mod:`gateway.api.errors`). Each method also has its own documented route in
``/openapi.json``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.api import config_methods as _config_methods  # noqa: F401 (registers methods)
from gateway.api import key_methods as _key_methods  # noqa: F401 (registers methods)
from gateway.api import secret_methods as _secret_methods  # noqa: F401 (registers methods)
from gateway.api import session_methods as _session_methods  # noqa: F401 (registers methods)
from gateway.api.auth import Authenticator, Principal
from gateway.api.errors import (
    ACCESS_DENIED,
    INTERNAL_ERROR,
    INVALID_APPLICATION,
    INVALID_KEY,
    INVALID_ROLE,
    INVALID_RULE,
    INVALID_SCENARIO,
    INVALID_SECRET,
    MISSING_CMD,
    NAME_NOT_UNIQUE,
    UNKNOWN_COMMAND,
    PlatformError,
)
from gateway.api.params import read_params
from gateway.api.registry import COMMON_PARAMS, METHODS, CallContext, MethodSpec, lookup
from gateway.runtime.records import ScenarioRunner
from gateway.settings import Settings
from gateway.store import AccountInfo, AlreadyExists, NotFound, Store
from gateway.store.keys import ROLES, Permission

log = logging.getLogger(__name__)

_NOT_FOUND_CODES = {"application": INVALID_APPLICATION, "scenario": INVALID_SCENARIO,
                    "rule": INVALID_RULE, "key": INVALID_KEY, "role": INVALID_ROLE,
                    "secret": INVALID_SECRET}
_NOT_FOUND_MSGS = {"application": "Invalid application", "scenario": "Invalid scenario",
                   "rule": "Invalid rule", "key": "Invalid key", "role": "Invalid role",
                   "secret": "Invalid secret"}


def _store_error(exc: NotFound | AlreadyExists) -> PlatformError:
    if isinstance(exc, NotFound):
        return PlatformError(_NOT_FOUND_CODES.get(exc.kind, INVALID_APPLICATION),
                             f"{_NOT_FOUND_MSGS.get(exc.kind, 'Not found')}: "
                             f"{exc.kind} {exc.key!r} not found")
    return PlatformError(NAME_NOT_UNIQUE, f"Name is not unique: {exc.kind} name {exc.name!r} "
                                          "is already taken")


class PlatformApi:
    """Dispatches platform_api calls to the registered methods.

    Args:
        store: the gateway store.
        runner: the runtime's scenario runner.
        settings: gateway settings.
        authenticator: turns request parameters/headers into an account (error 100).
    """

    def __init__(self, *, store: Store, runner: ScenarioRunner, settings: Settings,
                 authenticator: Authenticator):
        self.store = store
        self.runner = runner
        self.settings = settings
        self.authenticator = authenticator

    async def handle(self, request: Request, cmd: str | None = None) -> JSONResponse:
        """Run one call; never raises (errors become error replies)."""
        method = "?"
        try:
            params = await read_params(request)
            name = cmd or params.raw("cmd")
            if not name:
                raise PlatformError(MISSING_CMD, "Missing 'cmd' parameter")
            spec = lookup(name)
            if spec is None:
                raise PlatformError(UNKNOWN_COMMAND, f"Unknown command: {name[:100]}")
            method = spec.name
            headers = {k.lower(): v for k, v in request.headers.items()}
            principal = await self.authenticator(params, headers, self.store)
            if isinstance(principal, AccountInfo):  # an authenticator from before roles
                principal = Principal(principal, Permission.ADMIN)
            if principal.permission < spec.permission:
                raise PlatformError(ACCESS_DENIED,
                                    f"Access denied: the key's roles do not allow {spec.name} "
                                    f"(needs {spec.permission.name.lower()} permission)")
            ctx = CallContext(self.store, self.runner, self.settings, principal.account,
                              principal.permission, principal.key_id)
            try:
                result = await spec.handler(ctx, params)
            except (NotFound, AlreadyExists) as exc:
                raise _store_error(exc) from exc
            return JSONResponse(result)
        except PlatformError as exc:
            log.info("platform_api %s failed: %s %s", method, exc.code, exc.msg)
            return JSONResponse(exc.body(), status_code=exc.http_status)
        except Exception:
            # Parameters are not logged: they carry the API key.
            log.exception("platform_api %s: internal error", method)
            return JSONResponse({"error": {"code": INTERNAL_ERROR, "msg": "Internal error"}},
                                status_code=500)


def _openapi_extra(spec: MethodSpec) -> dict[str, Any]:
    params = [*COMMON_PARAMS, *spec.params]
    schema = {
        "type": "object",
        "properties": {p.name: {"type": p.type, "description": p.description} for p in params},
        "required": [p.name for p in params if p.required],
    }
    return {"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": schema},
        "application/json": {"schema": schema},
    }}}


_REPLY_DOC = ("Reply: HTTP 200 with `{\"result\": ...}` or `{\"error\": {\"code\", \"msg\"}}`. "
              "Parameters may also be sent in the query string (GET or POST).")


def _roles_allowed(level: Permission) -> str:
    return ", ".join(r.role_name for r in ROLES if r.permission >= level) + " or `api_key`"


def build_router(api: PlatformApi) -> APIRouter:
    """Routes of ``/platform_api``: the ``cmd`` endpoint, one per method, and a catch-all."""
    router = APIRouter(tags=["platform_api"])
    methods_doc = "\n".join(f"- `{m.name}`: {m.summary}" for m in METHODS.values())

    async def by_cmd(request: Request) -> JSONResponse:
        return await api.handle(request)

    router.add_api_route(
        "/platform_api", by_cmd, methods=["POST"], summary="Call a method by `cmd`",
        description=("Voximplant-compatible HTTP API. Send `cmd` (the method name), "
                     "`account_id`, `api_key` (or `Authorization: Bearer <JWT>` signed RS256 "
                     "by a service-account key from CreateKey) and the method's parameters "
                     f"form-encoded, as a JSON object, or in the query string. {_REPLY_DOC}"
                     "\n\nMethods:\n"
                     + methods_doc),
        response_class=JSONResponse, operation_id="platform_api")
    router.add_api_route("/platform_api", by_cmd, methods=["GET"], include_in_schema=False)
    router.add_api_route("/platform_api/", by_cmd, methods=["GET", "POST"],
                         include_in_schema=False)

    for spec in METHODS.values():
        def make(name: str) -> Any:
            async def call(request: Request) -> JSONResponse:
                return await api.handle(request, name)
            call.__name__ = f"platform_api_{name}"
            return call

        router.add_api_route(
            f"/platform_api/{spec.name}/", make(spec.name), methods=["POST"],
            summary=spec.name,
            description=(f"{spec.summary}\n\nRole: needs {spec.permission.name.lower()} "
                         f"permission ({_roles_allowed(spec.permission)}). {_REPLY_DOC}"),
            openapi_extra=_openapi_extra(spec), response_class=JSONResponse,
            operation_id=f"platform_api_{spec.name}")

    async def by_path(request: Request, cmd: str) -> JSONResponse:
        return await api.handle(request, cmd)

    # GET on the method routes, the same without trailing slash, and unknown methods (103).
    router.add_api_route("/platform_api/{cmd}", by_path, methods=["GET", "POST"],
                         include_in_schema=False)
    router.add_api_route("/platform_api/{cmd}/", by_path, methods=["GET", "POST"],
                         include_in_schema=False)
    return router
