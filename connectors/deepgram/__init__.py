"""Deepgram Voice Agent connector: the ``Deepgram`` namespace scenarios see.

``Deepgram.create_voice_agent_client`` on top of the official ``deepgram-sdk``
(``AsyncDeepgramClient(...).agent.v1.connect()``), speaking the Voice Agent
protocol: ``Welcome`` -> ``Settings`` -> ``SettingsApplied``, binary audio both
ways (μ-law/A-law passthrough for G.711 calls), ``FunctionCallRequest`` /
``FunctionCallResponse``, ``UserStartedSpeaking`` barge-in.

Example (scenario code)::

    ai = await Deepgram.create_voice_agent_client(
        instructions="Be brief.",
        functions=[{"name": "transfer", "description": "Transfer the caller",
                    "parameters": {"type": "object", "properties": {}}}])
    ai.add_event_listener(Deepgram.VoiceAgentEvents.ToolCall,
                          lambda e: ai.send_tool_result(e.call_id, {"ok": True}))
    VoxEngine.send_media_between(call, ai)   # Settings go out now, in the call's law
"""

from __future__ import annotations

from connectors.base import Capabilities, ConnectOptions, ConnectorError
from connectors.deepgram.client import DEEPGRAM_AGENT_CAPABILITIES, VoiceAgentClient
from connectors.deepgram.connect import create_voice_agent_client
from connectors.deepgram.events import SERVER_EVENT_MAP, VoiceAgentEvents, event_name


class Deepgram:
    """The ``Deepgram`` namespace of scenario globals."""

    VoiceAgentEvents = VoiceAgentEvents
    VoiceAgentClient = VoiceAgentClient
    ConnectOptions = ConnectOptions
    ConnectorError = ConnectorError
    capabilities: Capabilities = DEEPGRAM_AGENT_CAPABILITIES
    create_voice_agent_client = staticmethod(create_voice_agent_client)

    def __init__(self) -> None:
        raise TypeError("Deepgram is a namespace; call Deepgram.create_voice_agent_client(...)")


__all__ = [
    "DEEPGRAM_AGENT_CAPABILITIES",
    "SERVER_EVENT_MAP",
    "ConnectOptions",
    "ConnectorError",
    "Deepgram",
    "VoiceAgentClient",
    "VoiceAgentEvents",
    "create_voice_agent_client",
    "event_name",
]
