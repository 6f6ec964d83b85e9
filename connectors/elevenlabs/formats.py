"""ElevenLabs Agents audio format names <-> gateway :class:`AudioFormat`.

The names are the SDK's ``elevenlabs.types.TtsOutputFormat`` (agent output,
``agent_output_audio_format``) and ``elevenlabs.types.AsrInputFormat`` (user input,
``user_input_audio_format``): ``"ulaw_8000"`` (G.711 μ-law, 8 kHz) and
``"pcm_<rate>"`` (PCM16 little-endian mono) for 8000, 16000, 22050, 24000, 44100
and 48000 Hz. The format is a setting of the agent; the server announces it in
``conversation_initiation_metadata`` and the connector follows it.
"""

from __future__ import annotations

import typing
import warnings
from typing import Any

from elevenlabs.types import AsrInputFormat, TtsOutputFormat

from gateway.media.format import PCM16_16K, PCMU_8K, AudioFormat, Encoding


def _literal_names(alias: typing.Any) -> tuple[str, ...]:
    names: list[str] = []
    for arg in typing.get_args(alias):
        if typing.get_origin(arg) is typing.Literal:
            names += [a for a in typing.get_args(arg) if isinstance(a, str)]
    return tuple(names)


#: Agent output format names the SDK knows (``TtsOutputFormat``).
OUTPUT_FORMAT_NAMES: tuple[str, ...] = _literal_names(TtsOutputFormat)
#: User input format names the SDK knows (``AsrInputFormat``).
INPUT_FORMAT_NAMES: tuple[str, ...] = _literal_names(AsrInputFormat)


def from_elevenlabs_format(name: str | None) -> AudioFormat | None:
    """The :class:`AudioFormat` for ``"ulaw_8000"`` / ``"pcm_16000"`` ...; None if unknown."""
    if not isinstance(name, str):
        return None
    if name == "ulaw_8000":
        return PCMU_8K
    if name.startswith("pcm_"):
        try:
            rate = int(name[4:])
        except ValueError:
            return None
        return AudioFormat(Encoding.PCM16, rate) if rate > 0 else None
    return None


def to_elevenlabs_format(fmt: AudioFormat) -> str:
    """The ElevenLabs name of ``fmt`` (``PCMU_8K`` -> ``"ulaw_8000"``).

    Raises:
        ValueError: ElevenLabs has no such format (A-law, stereo ...).
    """
    if fmt == PCMU_8K:
        return "ulaw_8000"
    if fmt.encoding is Encoding.PCM16 and fmt.channels == 1:
        return f"pcm_{fmt.sample_rate}"
    raise ValueError(f"ElevenLabs Agents do not support {fmt}")


def _formats(names: tuple[str, ...]) -> tuple[AudioFormat, ...]:
    found = [f for f in (from_elevenlabs_format(n) for n in names) if f is not None]
    # PCM16 16 kHz (the agents' default) first, then μ-law, then the other rates.
    ordered = [PCM16_16K, PCMU_8K] + [f for f in found if f not in (PCM16_16K, PCMU_8K)]
    return tuple(dict.fromkeys(ordered))


#: Formats an agent can be configured to take, preferred first.
SUPPORTED_INPUT_FORMATS: tuple[AudioFormat, ...] = _formats(INPUT_FORMAT_NAMES)
#: Formats an agent can be configured to produce, preferred first.
SUPPORTED_OUTPUT_FORMATS: tuple[AudioFormat, ...] = _formats(OUTPUT_FORMAT_NAMES)


def _client_event_names() -> Any:
    # The SDK's conversation module imports the deprecated websockets.legacy API at
    # import time; keep its DeprecationWarning out of the gateway's logs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from elevenlabs.conversational_ai.conversation import ClientToOrchestratorEvent
    return ClientToOrchestratorEvent


#: The SDK's client message type names (``ClientToOrchestratorEvent``).
ClientToOrchestratorEvent = _client_event_names()
