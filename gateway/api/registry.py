"""Registry of platform_api methods (Voximplant HTTP API method names).

Each method is an async handler ``(ctx, params) -> result dict`` registered with
:func:`platform_method`, together with the parameters it reads; the parameter list
documents the method in ``/openapi.json`` (the handler itself parses and checks them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.api.params import Params
from gateway.runtime.records import ScenarioRunner
from gateway.settings import Settings
from gateway.store import AccountInfo, Store


@dataclass(slots=True)
class CallContext:
    """What a method handler works with: the caller's account and the gateway's services."""

    store: Store
    runner: ScenarioRunner
    settings: Settings
    account: AccountInfo


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


#: Methods by name, in registration order.
METHODS: dict[str, MethodSpec] = {}

#: Parameters every method takes.
COMMON_PARAMS = [
    ParamDoc("account_id", "integer", "Account id.", required=True),
    ParamDoc("api_key", "string", "Account API key.", required=True),
]
PAGING_PARAMS = [
    ParamDoc("count", "integer", "Maximum items to return (default 20, at most 1000)."),
    ParamDoc("offset", "integer", "Items to skip (default 0)."),
]


def platform_method(name: str, summary: str,
                    params: list[ParamDoc]) -> Callable[[Handler], Handler]:
    """Register the decorated handler as platform_api method ``name``."""

    def register(handler: Handler) -> Handler:
        if name in METHODS:
            raise ValueError(f"platform_api method {name} registered twice")
        METHODS[name] = MethodSpec(name, handler, summary, params)
        return handler

    return register


def lookup(name: str) -> MethodSpec | None:
    """The method called ``name`` (exact, else case-insensitive), or ``None``."""
    spec = METHODS.get(name)
    if spec is not None:
        return spec
    lowered = name.lower()
    return next((m for m in METHODS.values() if m.name.lower() == lowered), None)
