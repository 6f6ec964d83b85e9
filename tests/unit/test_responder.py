"""The offline responder (connectors/cascade/responder.py): its rules, streamed like an LLM."""

from __future__ import annotations

import json

from connectors.cascade.responder import GREETING, OFFER, TRANSFER_TOOL, OfflineResponder

TRANSFER = {"type": "function", "function": {"name": TRANSFER_TOOL, "description": "x",
                                             "parameters": {"type": "object"}}}


async def collect(responder, messages, tools=()):
    text, calls = "", []
    deltas = 0
    async for delta in responder.stream(list(messages), list(tools)):
        deltas += 1
        text += delta.text
        calls += list(delta.tool_calls)
    return text, calls, deltas


async def test_greets_before_the_caller_speaks_and_streams_word_by_word() -> None:
    text, calls, deltas = await collect(OfflineResponder(), [{"role": "system", "content": "x"}])
    assert text == GREETING and calls == []
    assert deltas == len(GREETING.split(" "))


async def test_repeats_what_it_heard_and_offers_a_transfer() -> None:
    text, _calls, _ = await collect(OfflineResponder(),
                                    [{"role": "user", "content": "my printer is on fire"}])
    assert text == f"I heard: my printer is on fire. {OFFER}"


async def test_yes_after_the_offer_calls_the_transfer_tool_then_confirms() -> None:
    r = OfflineResponder()
    history = [{"role": "user", "content": "billing"},
               {"role": "assistant", "content": f"I heard: billing. {OFFER}"},
               {"role": "user", "content": "yes please"}]
    text, calls, _ = await collect(r, history, [TRANSFER])
    assert text == "" and len(calls) == 1
    assert calls[0].name == TRANSFER_TOOL
    assert json.loads(calls[0].arguments) == {"reason": "yes please"}
    history += [{"role": "assistant", "content": None,
                 "tool_calls": [{"id": calls[0].id, "type": "function",
                                 "function": {"name": TRANSFER_TOOL,
                                              "arguments": calls[0].arguments}}]},
                {"role": "tool", "tool_call_id": calls[0].id, "content": '{"ok": true}'}]
    text, calls, _ = await collect(r, history, [TRANSFER])
    assert text == "Done. Transferring you now." and calls == []
    # without the tool it says so instead of calling anything
    text, calls, _ = await collect(r, history[:3])
    assert calls == [] and "no operator is configured" in text


async def test_other_rules() -> None:
    r = OfflineResponder()
    offer = {"role": "assistant", "content": f"I heard: x. {OFFER}"}
    assert (await collect(r, [offer, {"role": "user", "content": "no thanks"}]))[0] == (
        "All right. What else can I do for you?")
    assert (await collect(r, [{"role": "user", "content": "goodbye"}]))[0].startswith("Goodbye")
    assert (await collect(r, [{"role": "user", "content": "hello"}]))[0] == (
        "Hello! How can I help you?")
    assert "did not catch" in (await collect(r, [{"role": "user", "content": " "}]))[0]
    err = {"role": "tool", "tool_call_id": "c", "content": '{"error": "no agents"}'}
    assert (await collect(r, [err]))[0] == "Done. Sorry, that did not work: no agents."
