"""The built-in offline responder: a rule-based stand-in for an LLM.

It speaks the same streaming interface as :class:`connectors.cascade.llm.LLM`
(Chat Completions-shaped ``messages`` in, :class:`LLMDelta` out), so the cascade
runs its whole STT -> LLM -> TTS loop with no network. Rules, first match wins:

* no user turn yet: the greeting;
* the last message is a tool result: it confirms the action;
* nothing understood: asks the caller to repeat;
* after an offer to transfer, "yes"-like words: calls the ``transfer_call`` tool
  when the scenario declared one, otherwise says it cannot;
* "no"-like words after the offer: asks what else it can do;
* goodbye words: says goodbye;
* greetings: greets back;
* anything else: repeats what it understood and offers to transfer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from connectors.cascade.llm import LLMDelta, ToolCallRequest

GREETING = "Hello! You are talking to the voice gateway's offline assistant. How can I help you?"
OFFER = "Would you like me to transfer you to an operator?"
#: The tool the responder calls when the caller accepts a transfer.
TRANSFER_TOOL = "transfer_call"

_YES = {"yes", "yeah", "yep", "sure", "okay", "ok", "please", "right", "correct", "transfer"}
_NO = {"no", "nope", "not", "don't", "dont"}
_BYE = {"bye", "goodbye", "good-bye"}
_HELLO = {"hello", "hi", "hey", "morning", "afternoon", "evening"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z'-]+", text.lower()))


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class OfflineResponder:
    """Answers from simple rules; never touches the network.

    Args:
        greeting: what it says before the caller has spoken.
    """

    name = "responder"

    def __init__(self, greeting: str = GREETING) -> None:
        self.greeting = greeting

    def reply(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
              ) -> tuple[str, ToolCallRequest | None]:
        """The answer to ``messages``: (text, tool call or None)."""
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return "Done. " + self._tool_summary(_content(last)), None
        user = [m for m in messages if m.get("role") == "user"]
        if not user:
            return self.greeting, None
        heard = _content(user[-1]).strip()
        words = _words(heard)
        if not words:
            return "Sorry, I did not catch that. Could you say it again?", None
        offered = any(m.get("role") == "assistant" and OFFER in _content(m)
                      for m in messages[-3:])
        if offered and words & _YES and not words & _NO:
            if any(_tool_name(t) == TRANSFER_TOOL for t in tools):
                call = ToolCallRequest(id=f"call_{uuid.uuid4().hex[:12]}", name=TRANSFER_TOOL,
                                       arguments=json.dumps({"reason": heard}))
                return "", call
            return "I would transfer you now, but no operator is configured.", None
        if offered and words & _NO:
            return "All right. What else can I do for you?", None
        if words & _BYE:
            return "Goodbye! Thank you for calling.", None
        if words & _HELLO and len(words) <= 3:
            return "Hello! How can I help you?", None
        return f"I heard: {heard}. {OFFER}", None

    @staticmethod
    def _tool_summary(content: str) -> str:
        try:
            data = json.loads(content)
        except ValueError:
            return content[:200]
        if isinstance(data, dict) and "error" in data:
            return f"Sorry, that did not work: {data['error']}."
        return "Transferring you now." if isinstance(data, dict) else str(data)[:200]

    async def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                     ) -> AsyncIterator[LLMDelta]:
        """Yield the reply word by word, then the tool call (if any) on a final delta."""
        text, call = self.reply(messages, tools)
        words = text.split(" ") if text else []
        for i, word in enumerate(words):
            yield LLMDelta(text=word if i == 0 else " " + word)
        if call is not None:
            yield LLMDelta(tool_calls=(call,))


def _tool_name(tool: dict[str, Any]) -> str:
    fn = tool.get("function")
    if isinstance(fn, dict):
        return str(fn.get("name", ""))
    return str(tool.get("name", ""))
