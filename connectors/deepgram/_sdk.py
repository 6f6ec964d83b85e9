"""Imports of the official ``deepgram-sdk`` (v5+ layout: ``client.agent.v1.connect()``).

The SDK's async agent socket is built on ``websockets.legacy``, whose import warns
(DeprecationWarning) on websockets >= 14; the warning is silenced here, once.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import deepgram.agent.v1.client
    import deepgram.core.websocket_compat  # noqa: F401  (InvalidStatusCode alias)
    from deepgram import AsyncDeepgramClient
    from deepgram.agent.v1 import types
    from deepgram.agent.v1.socket_client import AsyncV1SocketClient, V1SocketClientResponse
    from deepgram.agent.v1.types import (
        AgentV1KeepAlive,
        AgentV1SendFunctionCallResponse,
        AgentV1Settings,
        AgentV1UpdatePrompt,
        AgentV1UpdateSpeak,
    )
    from deepgram.core.api_error import ApiError
    from deepgram.environment import DeepgramClientEnvironment

__all__ = [
    "AgentV1KeepAlive",
    "AgentV1SendFunctionCallResponse",
    "AgentV1Settings",
    "AgentV1UpdatePrompt",
    "AgentV1UpdateSpeak",
    "ApiError",
    "AsyncDeepgramClient",
    "AsyncV1SocketClient",
    "DeepgramClientEnvironment",
    "V1SocketClientResponse",
    "types",
]
