"""Typed errors raised by the store (mapped to platform_api error codes by ``gateway.api``)."""

from __future__ import annotations

from gateway.errors import GatewayError


class StoreError(GatewayError):
    """Base class of store errors."""


class NotFound(StoreError):
    """An application, scenario or rule does not exist in the caller's account.

    Args:
        kind: ``"application"``, ``"scenario"`` or ``"rule"``.
        key: the id or name that was looked up.
    """

    def __init__(self, kind: str, key: object):
        super().__init__(f"{kind} not found: {key!r}")
        self.kind = kind
        self.key = key


class AlreadyExists(StoreError):
    """A name that must be unique in its scope is taken.

    Args:
        kind: ``"application"``, ``"scenario"`` or ``"rule"``.
        name: the name that is taken.
    """

    def __init__(self, kind: str, name: str):
        super().__init__(f"{kind} name is not unique: {name!r}")
        self.kind = kind
        self.name = name
