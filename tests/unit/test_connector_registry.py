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
