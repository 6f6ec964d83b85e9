"""Gemini Live API connector: the ``Gemini`` namespace scenarios see.

Follows VoxEngine's Gemini module in snake_case
(``Gemini.createLiveAPIClient`` -> ``Gemini.create_live_api_client``,
``Gemini.LiveAPIEvents``) on top of the official ``google-genai`` SDK.

Example (scenario code)::

    ai = await Gemini.create_live_api_client(model="gemini-live-2.5-flash-preview",
                                             instructions="Be brief.",
                                             tools=[{"name": "weather", "parameters": {...}}])
    ai.add_event_listener(Gemini.LiveAPIEvents.ToolCall,
                          lambda e: ai.send_tool_result(e.call_id, {"output": "sunny"}))
    VoxEngine.send_media_between(call, ai)
"""

from __future__ import annotations

from connectors.base import Capabilities, ConnectOptions, ConnectorError
from connectors.gemini.client import LiveAPIClient, tool_response_body
from connectors.gemini.connect import (
    DEFAULT_MODEL,
    build_live_config,
    create_live_api_client,
)
from connectors.gemini.events import SERVER_MESSAGE_MAP, LiveAPIEvents, message_events
from connectors.gemini.formats import GEMINI_LIVE_CAPABILITIES


class Gemini:
    """The ``Gemini`` namespace of scenario globals (VoxEngine's ``Gemini`` module)."""

    LiveAPIEvents = LiveAPIEvents
    LiveAPIClient = LiveAPIClient
    ConnectOptions = ConnectOptions
    ConnectorError = ConnectorError
    capabilities: Capabilities = GEMINI_LIVE_CAPABILITIES
    create_live_api_client = staticmethod(create_live_api_client)

    def __init__(self) -> None:
        raise TypeError("Gemini is a namespace; call Gemini.create_live_api_client(...)")


__all__ = [
    "DEFAULT_MODEL",
    "GEMINI_LIVE_CAPABILITIES",
    "SERVER_MESSAGE_MAP",
    "ConnectOptions",
    "ConnectorError",
    "Gemini",
    "LiveAPIClient",
    "LiveAPIEvents",
    "build_live_config",
    "create_live_api_client",
    "message_events",
    "tool_response_body",
]
