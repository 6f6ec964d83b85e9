"""OpenAI Realtime API (GA) audio format objects <-> gateway :class:`AudioFormat`.

Follows ``openai.types.realtime.RealtimeAudioFormats``: ``{"type": "audio/pcm",
"rate": 24000}`` (PCM16 little-endian mono, 24 kHz only), ``{"type": "audio/pcmu"}``
(G.711 μ-law, 8 kHz) and ``{"type": "audio/pcma"}`` (G.711 A-law, 8 kHz).
"""

from __future__ import annotations

from typing import Any

from gateway.media.format import PCM16_24K, PCMA_8K, PCMU_8K, AudioFormat

#: Formats the Realtime API accepts and produces, preferred (PCM16 24 kHz) first.
SUPPORTED_FORMATS: tuple[AudioFormat, ...] = (PCM16_24K, PCMU_8K, PCMA_8K)


def to_openai_format(fmt: AudioFormat) -> dict[str, Any]:
    """The GA ``audio.{input,output}.format`` object for ``fmt``.

    Raises:
        ValueError: the Realtime API has no such format.
    """
    if fmt == PCM16_24K:
        return {"type": "audio/pcm", "rate": 24000}
    if fmt == PCMU_8K:
        return {"type": "audio/pcmu"}
    if fmt == PCMA_8K:
        return {"type": "audio/pcma"}
    raise ValueError(f"the OpenAI Realtime API does not support {fmt}")


def from_openai_format(obj: Any) -> AudioFormat | None:
    """The :class:`AudioFormat` for a GA format object; None when absent or unknown."""
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    if kind == "audio/pcm":
        rate = obj.get("rate", 24000)
        return PCM16_24K if rate in (None, 24000) else None
    if kind == "audio/pcmu":
        return PCMU_8K
    if kind == "audio/pcma":
        return PCMA_8K
    return None


def session_formats(session: Any) -> tuple[AudioFormat | None, AudioFormat | None]:
    """(input, output) formats a GA session object declares; None where it is silent."""
    if not isinstance(session, dict):
        return None, None
    audio = session.get("audio")
    if not isinstance(audio, dict):
        return None, None
    inp = audio.get("input")
    out = audio.get("output")
    return (
        from_openai_format(inp.get("format")) if isinstance(inp, dict) else None,
        from_openai_format(out.get("format")) if isinstance(out, dict) else None,
    )
