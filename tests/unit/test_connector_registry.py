"""Connector namespaces in scenario globals, and the error for a missing vendor extra."""

from __future__ import annotations

import pytest

from connectors import registry
from connectors.base import ConnectorError, VoiceAIEvents


def test_every_connector_namespace_is_available_here():
    names = registry.connector_namespaces()
    assert names["VoiceAIEvents"] is VoiceAIEvents
    for name in registry.CONNECTORS:
        assert not isinstance(names[name], registry.MissingConnector), names[name]


def test_missing_extra_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(registry.CONNECTORS, "Nope", ("connectors.does_not_exist", "Nope",
                                                      "nope"))
    stub = registry.connector_namespaces()["Nope"]
    with pytest.raises(ConnectorError, match=r"voice-gateway\[nope\]"):
        stub.create_client()


async def test_shared_sdk_client_builds_once_off_the_loop_and_retries_failures():
    import asyncio
    import threading

    from connectors.base import shared_sdk_client

    built: list[str] = []

    def build() -> object:
        built.append(threading.current_thread().name)
        return object()

    a, b = await asyncio.gather(shared_sdk_client(("t", 1), build),
                                shared_sdk_client(("t", 1), build))
    assert a is b and len(built) == 1
    assert built[0] != threading.main_thread().name  # built in a worker thread
    assert await shared_sdk_client(("t", 2), build) is not a

    def broken() -> object:
        raise ValueError("bad key")

    with pytest.raises(ValueError):
        await shared_sdk_client(("t", 3), broken)
    assert await shared_sdk_client(("t", 3), build) is not None  # not cached
