"""Which connector namespaces scenarios see, and a friendly error for a missing extra.

Each vendor SDK is an optional extra of the ``voice-gateway`` distribution (Pipecat's
pattern): ``pip install 'voice-gateway[gemini]'``. A scenario that uses a connector
whose SDK is not installed gets a :class:`~connectors.base.ConnectorError` naming the
extra to install, instead of the whole gateway failing to start.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from connectors.base import ConnectorError, VoiceAIEvents

log = logging.getLogger(__name__)

#: Scenario global name -> (module, attribute, pip extra or None when always installed).
CONNECTORS: dict[str, tuple[str, str, str | None]] = {
    "OpenAI": ("connectors.openai", "OpenAI", None),
    "Gemini": ("connectors.gemini", "Gemini", "gemini"),
    "ElevenLabs": ("connectors.elevenlabs", "ElevenLabs", "elevenlabs"),
    "Deepgram": ("connectors.deepgram", "Deepgram", "deepgram"),
    "Ultravox": ("connectors.ultravox", "Ultravox", None),
    "Cascade": ("connectors.cascade", "Cascade", None),
}


class MissingConnector:
    """Stands in for a connector namespace whose vendor SDK is not installed.

    Any attribute access raises :class:`ConnectorError` with the install command.
    """

    def __init__(self, name: str, extra: str | None, cause: BaseException) -> None:
        self._name = name
        self._extra = extra
        self._cause = cause

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        hint = (f"pip install 'voice-gateway[{self._extra}]'" if self._extra
                else "reinstall voice-gateway")
        raise ConnectorError(f"the {self._name} connector is not available "
                             f"({self._cause}); {hint}", vendor=self._name.lower())

    def __repr__(self) -> str:
        return f"<{self._name} connector: not installed>"


def connector_namespaces() -> dict[str, Any]:
    """Scenario globals for every connector, plus ``VoiceAIEvents``."""
    names: dict[str, Any] = {"VoiceAIEvents": VoiceAIEvents}
    for global_name, (module, attr, extra) in CONNECTORS.items():
        try:
            names[global_name] = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            log.info("%s connector unavailable: %s", global_name, exc)
            names[global_name] = MissingConnector(global_name, extra, exc)
    return names
