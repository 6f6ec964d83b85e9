"""OpenAI Realtime API (GA) connector: the ``OpenAI`` namespace scenarios see.

Follows VoxEngine's OpenAI module in snake_case
(``OpenAI.createRealtimeAPIClient`` -> ``OpenAI.create_realtime_api_client``,
``OpenAI.RealtimeAPIEvents``) on top of the official ``openai`` SDK, speaking the
GA Realtime protocol only.

Example (scenario code)::

    ai = await OpenAI.create_realtime_api_client(model="gpt-realtime",
                                                 instructions="Be brief.")
    ai.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseFunctionCallArgumentsDone,
                          lambda e: ai.send_tool_result(e.data["call_id"], {"ok": True}))
    VoxEngine.send_media_between(call, ai)
"""

from __future__ import annotations

from connectors.base import Capabilities, ConnectOptions, ConnectorError
from connectors.openai.client import OPENAI_REALTIME_CAPABILITIES, RealtimeAPIClient
from connectors.openai.connect import create_realtime_api_client
from connectors.openai.events import SERVER_EVENT_MAP, RealtimeAPIEvents, event_name


class OpenAI:
    """The ``OpenAI`` namespace of scenario globals (VoxEngine's ``OpenAI`` module)."""

    RealtimeAPIEvents = RealtimeAPIEvents
    RealtimeAPIClient = RealtimeAPIClient
    ConnectOptions = ConnectOptions
    ConnectorError = ConnectorError
    capabilities: Capabilities = OPENAI_REALTIME_CAPABILITIES
    create_realtime_api_client = staticmethod(create_realtime_api_client)

    def __init__(self) -> None:
        raise TypeError("OpenAI is a namespace; call OpenAI.create_realtime_api_client(...)")


__all__ = [
    "OPENAI_REALTIME_CAPABILITIES",
    "SERVER_EVENT_MAP",
    "ConnectOptions",
    "ConnectorError",
    "OpenAI",
    "RealtimeAPIClient",
    "RealtimeAPIEvents",
    "create_realtime_api_client",
    "event_name",
]
