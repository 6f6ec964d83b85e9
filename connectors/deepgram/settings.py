"""Deepgram Voice Agent ``Settings``: audio formats and the agent configuration.

Audio objects follow ``AgentV1SettingsAudioInput`` / ``AgentV1SettingsAudioOutput``:
``{"encoding": "mulaw", "sample_rate": 8000}`` (G.711 μ-law), ``"alaw"`` (A-law),
``"linear16"`` (PCM16 little-endian mono) at any common rate; output adds
``"container": "none"`` so audio arrives as raw frames. The whole message is
validated with the SDK's ``AgentV1Settings`` type before it is sent.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from gateway.media.format import (
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    PCM16_48K,
    PCMA_8K,
    PCMU_8K,
    AudioFormat,
    Encoding,
)

log = logging.getLogger("connectors.deepgram.client")

#: Formats the Voice Agent accepts from us, preferred (PCM16 16 kHz) first.
INPUT_FORMATS: tuple[AudioFormat, ...] = (
    PCM16_16K, PCM16_24K, PCM16_8K, PCM16_48K, PCMU_8K, PCMA_8K)
#: Formats the Voice Agent produces, preferred (PCM16 24 kHz, Aura's native rate) first.
OUTPUT_FORMATS: tuple[AudioFormat, ...] = (
    PCM16_24K, PCM16_16K, PCM16_8K, PCM16_48K, PCMU_8K, PCMA_8K)

#: Agent defaults when the scenario leaves listen/think/speak out.
DEFAULT_LISTEN: dict[str, Any] = {"provider": {"type": "deepgram", "model": "nova-3"}}
DEFAULT_THINK: dict[str, Any] = {"provider": {"type": "open_ai", "model": "gpt-4o-mini"}}
DEFAULT_SPEAK: dict[str, Any] = {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}}

_ENCODINGS = {Encoding.PCMU: "mulaw", Encoding.PCMA: "alaw", Encoding.PCM16: "linear16"}


def to_deepgram_audio(fmt: AudioFormat, *, output: bool = False) -> dict[str, Any]:
    """The ``audio.input`` (or ``audio.output``) object for ``fmt``.

    Raises:
        ValueError: the Voice Agent has no such format.
    """
    if fmt not in (OUTPUT_FORMATS if output else INPUT_FORMATS):
        raise ValueError(f"the Deepgram Voice Agent does not support {fmt}")
    obj: dict[str, Any] = {"encoding": _ENCODINGS[fmt.encoding], "sample_rate": fmt.sample_rate}
    if output:
        obj["container"] = "none"
    return obj


def from_deepgram_audio(obj: Any) -> AudioFormat | None:
    """The :class:`AudioFormat` of an audio object; None when absent or unsupported."""
    if not isinstance(obj, dict):
        return None
    enc = {"mulaw": Encoding.PCMU, "alaw": Encoding.PCMA, "linear16": Encoding.PCM16}.get(
        obj.get("encoding") or "linear16")
    rate = obj.get("sample_rate") or 24000
    if enc is None or not isinstance(rate, int):
        return None
    fmt = AudioFormat(enc, rate)
    return fmt if fmt in INPUT_FORMATS + OUTPUT_FORMATS else None


def _function(fn: dict[str, Any]) -> dict[str, Any]:
    """A Deepgram function definition; OpenAI-style ``{"type": "function", ...}`` accepted."""
    out = copy.deepcopy(fn)
    if out.get("type") == "function":
        out.pop("type")
        inner = out.pop("function", None)
        if isinstance(inner, dict):  # Chat Completions shape
            out.update(inner)
    return out


def build_settings(
    input_format: AudioFormat,
    output_format: AudioFormat,
    *,
    settings: dict[str, Any] | None = None,
    listen: dict[str, Any] | None = None,
    think: dict[str, Any] | list[dict[str, Any]] | None = None,
    speak: dict[str, Any] | list[dict[str, Any]] | None = None,
    instructions: str | None = None,
    functions: list[dict[str, Any]] | None = None,
    greeting: str | None = None,
) -> dict[str, Any]:
    """The ``Settings`` message (a dict) for the given formats and agent parts.

    ``settings`` is a full or partial Settings body; the keyword parts override
    its ``agent`` fields. ``instructions`` becomes ``agent.think.prompt`` and
    ``functions`` ``agent.think.functions`` (on every think provider when ``think``
    is a list). ``audio.input``/``audio.output`` are always the given formats (they
    follow the call); a conflicting value in ``settings`` is replaced with a warning.
    """
    body = copy.deepcopy(dict(settings or {}))
    body["type"] = "Settings"
    audio = body.get("audio")
    if not isinstance(audio, dict):
        audio = body["audio"] = {}
    for key, fmt in (("input", input_format), ("output", output_format)):
        wanted = to_deepgram_audio(fmt, output=key == "output")
        given = audio.get(key)
        if isinstance(given, dict):
            clash = {k: v for k, v in given.items() if k in wanted and v != wanted[k]}
            if clash:
                log.warning("deepgram: audio.%s %r replaced by %r (it follows the call)",
                            key, clash, wanted)
            audio[key] = {**given, **wanted}
        else:
            audio[key] = wanted
    agent = body.get("agent")
    if not isinstance(agent, dict):
        agent = body["agent"] = {}
    for key, value, default in (("listen", listen, DEFAULT_LISTEN),
                                ("think", think, DEFAULT_THINK),
                                ("speak", speak, DEFAULT_SPEAK)):
        if value is not None:
            agent[key] = copy.deepcopy(value)
        elif agent.get(key) is None:
            agent[key] = copy.deepcopy(default)
    thinks = agent["think"] if isinstance(agent["think"], list) else [agent["think"]]
    for part in thinks:
        if not isinstance(part, dict):
            continue
        if instructions is not None:
            part["prompt"] = instructions
        if functions is not None:
            part["functions"] = [_function(f) for f in functions]
    if greeting is not None:
        agent["greeting"] = greeting
    return body


def validate_settings(body: dict[str, Any]) -> Any:
    """Parse ``body`` as the SDK's ``AgentV1Settings``; return the model.

    Raises:
        ValueError: it does not validate (pydantic's message included).
    """
    import pydantic

    from connectors.deepgram._sdk import AgentV1Settings

    try:
        return AgentV1Settings.model_validate(body)
    except pydantic.ValidationError as exc:
        raise ValueError(f"deepgram: invalid Settings: {exc}") from None
