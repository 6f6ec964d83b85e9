"""Ultravox connector (``serverWebSocket`` medium): the ``Ultravox`` namespace scenarios see.

Follows VoxEngine's Ultravox module in snake_case
(``Ultravox.createWebSocketAPIClient`` -> ``Ultravox.create_websocket_api_client``,
``Ultravox.WebSocketAPIEvents``). No Ultravox SDK covers server WebSockets, so it is
built on httpx (create call) and websockets (join the call).

Example (scenario code)::

    ai = await Ultravox.create_websocket_api_client(
        system_prompt="Be brief.", voice="Mark",
        selected_tools=[{"temporaryTool": {"modelToolName": "weather", "client": {},
                                           "description": "Weather in a city"}}])
    ai.add_event_listener(Ultravox.WebSocketAPIEvents.ToolCall,
                          lambda e: ai.send_tool_result(e.call_id, {"temp_c": 21}))
    VoxEngine.send_media_between(call, ai)
"""

from __future__ import annotations

from connectors.base import Capabilities, ConnectOptions, ConnectorError
from connectors.ultravox.client import (
    ULTRAVOX_CAPABILITIES,
    WebSocketAPIClient,
    ultravox_capabilities,
)
from connectors.ultravox.connect import (
    UltravoxHTTPError,
    build_call_body,
    create_websocket_api_client,
)
from connectors.ultravox.events import SERVER_EVENT_MAP, WebSocketAPIEvents, event_name


class Ultravox:
    """The ``Ultravox`` namespace of scenario globals (VoxEngine's ``Ultravox`` module)."""

    WebSocketAPIEvents = WebSocketAPIEvents
    WebSocketAPIClient = WebSocketAPIClient
    ConnectOptions = ConnectOptions
    ConnectorError = ConnectorError
    capabilities: Capabilities = ULTRAVOX_CAPABILITIES
    create_websocket_api_client = staticmethod(create_websocket_api_client)

    def __init__(self) -> None:
        raise TypeError("Ultravox is a namespace; call Ultravox.create_websocket_api_client(...)")


__all__ = [
    "SERVER_EVENT_MAP",
    "ULTRAVOX_CAPABILITIES",
    "ConnectOptions",
    "ConnectorError",
    "Ultravox",
    "UltravoxHTTPError",
    "WebSocketAPIClient",
    "WebSocketAPIEvents",
    "build_call_body",
    "create_websocket_api_client",
    "event_name",
    "ultravox_capabilities",
]
