"""ElevenLabs Agents (Conversational AI) connector: the ``ElevenLabs`` namespace.

Follows VoxEngine's ElevenLabs module in snake_case
(``ElevenLabs.createAgentsClient`` -> ``ElevenLabs.create_agents_client``,
``ElevenLabs.AgentsEvents``). The ``elevenlabs`` SDK provides the signed URL, the
URL building, the message type names and the initiation-data model; the WebSocket
protocol is spoken with ``websockets`` (the SDK's ``AsyncConversation`` cannot
report a refused connection, exposes no audio format metadata and blocks on
sends; see :mod:`connectors.elevenlabs.connect`).

Example (scenario code)::

    ai = await ElevenLabs.create_agents_client(agent_id="agent_123",
                                               dynamic_variables={"caller": call.caller_id})
    ai.add_event_listener(ElevenLabs.AgentsEvents.ToolCall,
                          lambda e: ai.send_tool_result(e.call_id, {"ok": True}))
    VoxEngine.send_media_between(call, ai)

For G.711 passthrough configure the agent with ``ulaw_8000`` input and output; a
PCM agent (``pcm_16000``, the default) gets one resample on each route edge.
"""

from __future__ import annotations

from connectors.base import Capabilities, ConnectOptions, ConnectorError
from connectors.elevenlabs.client import ELEVENLABS_AGENTS_CAPABILITIES, AgentsClient
from connectors.elevenlabs.connect import create_agents_client
from connectors.elevenlabs.events import SERVER_EVENT_MAP, AgentsEvents, event_name


class ElevenLabs:
    """The ``ElevenLabs`` namespace of scenario globals (VoxEngine's ``ElevenLabs`` module)."""

    AgentsEvents = AgentsEvents
    AgentsClient = AgentsClient
    ConnectOptions = ConnectOptions
    ConnectorError = ConnectorError
    capabilities: Capabilities = ELEVENLABS_AGENTS_CAPABILITIES
    create_agents_client = staticmethod(create_agents_client)


__all__ = [
    "ELEVENLABS_AGENTS_CAPABILITIES",
    "SERVER_EVENT_MAP",
    "AgentsClient",
    "AgentsEvents",
    "ElevenLabs",
    "create_agents_client",
    "event_name",
]
