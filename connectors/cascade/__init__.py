"""The offline cascade agent: ``Cascade.create_agent(stt=..., llm=..., tts=...)``.

Defaults run with no network: PocketSphinx STT (shared worker processes),
the built-in rule-based responder, espeak-ng TTS. Any part can be swapped::

    agent = await Cascade.create_agent(
        llm={"base_url": "http://127.0.0.1:11434/v1", "model": "llama3.2"},  # Ollama
        instructions="You are a helpful phone assistant.",
        tools=[{"name": "transfer_call", "description": "Transfer to an operator",
                "parameters": {"type": "object", "properties": {}}}],
    )
    VoxEngine.send_media_between(call, agent)
"""

from __future__ import annotations

from typing import Any

from connectors.cascade.agent import CascadeAgent, CascadeEvents, cascade_capabilities
from connectors.cascade.llm import LLM, LLMDelta, OpenAICompatibleLLM, ToolCallRequest
from connectors.cascade.responder import OfflineResponder
from gateway.speech import ASRProvider, TTSProvider, create_asr, create_tts


def make_llm(llm: str | dict[str, Any] | LLM | None) -> LLM:
    """An LLM from a name, an options dict or an object.

    ``None``/``"responder"``: the offline responder. ``"openai"``: an OpenAI-compatible
    endpoint from OPENAI_BASE_URL / OPENAI_API_KEY. A dict: :class:`OpenAICompatibleLLM`
    options (``base_url``, ``api_key``, ``model`` ...).

    Raises:
        ValueError: an unknown name.
    """
    if llm is None:
        return OfflineResponder()
    if isinstance(llm, str):
        if llm.lower() in ("responder", "offline", "default"):
            return OfflineResponder()
        if llm.lower() in ("openai", "openai-compatible"):
            return OpenAICompatibleLLM()
        raise ValueError(f"unknown LLM {llm!r} ('responder', 'openai' or an options dict)")
    if isinstance(llm, dict):
        return OpenAICompatibleLLM(**llm)
    return llm


async def create_agent(*, stt: str | ASRProvider = "pocketsphinx",
                       llm: str | dict[str, Any] | LLM | None = None,
                       tts: str | TTSProvider = "espeak", instructions: str = "",
                       tools: list[dict[str, Any]] | None = None,
                       greeting: str | None = None, **options: Any) -> CascadeAgent:
    """Build a :class:`CascadeAgent` (``Cascade.create_agent`` in scenarios).

    Args:
        stt: "pocketsphinx" (default) or an ASR provider object.
        llm: None/"responder" (offline, default), "openai", an
            :class:`OpenAICompatibleLLM` options dict, or an LLM object.
        tts: "espeak" (default) or a TTS provider object.
        instructions: the system prompt.
        tools: tool definitions; tool calls fire ``VoiceAIEvents.ToolCall``.
        greeting: what the agent says first; None: the offline responder greets,
            other LLMs wait for the caller; "": no greeting.
        options: more :class:`CascadeAgent` options (``voice``, ``language``, ``vad``,
            ``barge_in``, ``tool_timeout_s`` ...).

    Raises:
        ValueError: an unknown provider name or a bad tool definition.
    """
    model = make_llm(llm)
    options.setdefault("speak_greeting_with_llm", isinstance(model, OfflineResponder))
    return CascadeAgent(stt=create_asr(stt), llm=model, tts=create_tts(tts),
                        instructions=instructions, tools=tools, greeting=greeting, **options)


class Cascade:
    """The ``Cascade`` scenario global."""

    create_agent = staticmethod(create_agent)
    CascadeEvents = CascadeEvents
    Events = CascadeEvents


__all__ = [
    "LLM", "Cascade", "CascadeAgent", "CascadeEvents", "LLMDelta", "OfflineResponder",
    "OpenAICompatibleLLM", "ToolCallRequest", "cascade_capabilities", "create_agent",
    "make_llm",
]
