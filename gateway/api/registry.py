"""Registry of platform_api methods (Voximplant HTTP API method names).

Each method is an async handler ``(ctx, params) -> result dict`` registered with
:func:`platform_method`, together with the parameters it reads; the parameter list
documents the method in ``/openapi.json`` (the handler itself parses and checks them).

Every method also requires a :class:`~gateway.store.keys.Permission` level, checked
centrally by :class:`gateway.api.platform_api.PlatformApi` before the handler runs:
given explicitly, or by :func:`default_permission` from the name (``Get*`` and
``StartScenarios`` read, everything else writes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.api.params import Params
from gateway.runtime.records import ScenarioRunner
from gateway.settings import Settings
from gateway.store import AccountInfo, Store
from gateway.store.keys import Permission


@dataclass(slots=True)
class CallContext:
    """What a method handler works with: the caller's account and the gateway's services."""

    store: Store
    runner: ScenarioRunner
    settings: Settings
    account: AccountInfo
    #: What the caller may do (legacy ``api_key`` callers: ``ADMIN``).
    permission: Permission = Permission.ADMIN
    #: The service-account key that signed the request, ``None`` for ``api_key``.
    key_id: str | None = None


Handler = Callable[[CallContext, Params], Awaitable[dict[str, Any]]]


@dataclass(slots=True, frozen=True)
class ParamDoc:
    """One documented parameter of a method."""

    name: str
    type: Literal["string", "integer", "boolean"]
    description: str
    required: bool = False


@dataclass(slots=True)
class MethodSpec:
    """A platform_api method: its Voximplant name, handler and documentation."""

    name: str
    handler: Handler
    summary: str
    params: list[ParamDoc] = field(default_factory=list)
    #: Lowest permission a caller needs (see :func:`default_permission`).
    permission: Permission = Permission.WRITE


#: Methods by name, in registration order.
METHODS: dict[str, MethodSpec] = {}

#: Parameters every method takes.
COMMON_PARAMS = [
    ParamDoc("account_id", "integer", "Account id. Not needed with `Authorization: Bearer "
             "<JWT>` (a service-account key from CreateKey).", required=True),
    ParamDoc("api_key", "string", "Account API key. Not needed with `Authorization: Bearer "
             "<JWT>`.", required=True),
]

#: Methods that only read, besides ``Get*`` (StartScenarios starts a session of an
#: existing rule; it changes no configuration).
READ_METHODS = frozenset({"StartScenarios"})


def default_permission(name: str) -> Permission:
    """``READ`` for ``Get*`` methods and :data:`READ_METHODS`, else ``WRITE``."""
    if name.startswith("Get") or name in READ_METHODS:
        return Permission.READ
    return Permission.WRITE
PAGING_PARAMS = [
    ParamDoc("count", "integer", "Maximum items to return (default 20, at most 1000)."),
    ParamDoc("offset", "integer", "Items to skip (default 0)."),
]


def platform_method(name: str, summary: str, params: list[ParamDoc], *,
                    permission: Permission | None = None) -> Callable[[Handler], Handler]:
    """Register the decorated handler as platform_api method ``name``.

    Args:
        name: Voximplant method name.
        summary: one line for ``/openapi.json``.
        params: the parameters the handler reads (documentation).
        permission: required level; default :func:`default_permission` of ``name``.
    """

    def register(handler: Handler) -> Handler:
        if name in METHODS:
            raise ValueError(f"platform_api method {name} registered twice")
        level = default_permission(name) if permission is None else permission
        METHODS[name] = MethodSpec(name, handler, summary, params, level)
        return handler

    return register


def lookup(name: str) -> MethodSpec | None:
    """The method called ``name`` (exact, else case-insensitive), or ``None``."""
    spec = METHODS.get(name)
    if spec is not None:
        return spec
    lowered = name.lower()
    return next((m for m in METHODS.values() if m.name.lower() == lowered), None)
