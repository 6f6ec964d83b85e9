"""Inbound voice AI with any vendor: answer the call, bridge it to a Voice AI connector,
answer its tool calls, end when either side ends.

The same scenario works with every connector (they share one contract). Put a small
config scenario before it in the rule (scenarios of a rule share one namespace)::

    VENDOR = "gemini"          # openai | gemini | elevenlabs | deepgram | ultravox | cascade
    OPTIONS = {"model": "gemini-live-2.5-flash-preview", "instructions": "Be brief."}
    TOOL_HANDLERS = {"get_time": lambda args: {"time": "12:00"}}
    ON_AI_FAILURE = "keep"     # "hangup" (default) | "keep"

Without one, VGW_AI_VENDOR picks the vendor (default openai) and OPTIONS is empty,
so each connector reads its usual environment (OPENAI_API_KEY, GEMINI_API_KEY ...).

``tool_calls`` records every tool call as (name, arguments); a tool without a handler
is answered with an error object so the AI is never left waiting.

Failures: every ``VoiceAIEvents.Error`` (a vendor error, a message the connector could
not read) is written to the session log and the call goes on. When the voice AI cannot
be started, or its connection ends while the call is up (``WebSocketClosed`` the
scenario did not cause), the log says what happened and ``ON_AI_FAILURE`` decides:
``"hangup"`` ends the call and the session; ``"keep"`` leaves the call up without the
AI, for the caller (or another scenario in the rule) to end.
"""

import os

VENDOR = globals().get("VENDOR") or os.environ.get("VGW_AI_VENDOR", "openai")
OPTIONS = dict(globals().get("OPTIONS") or {})
TOOL_HANDLERS = dict(globals().get("TOOL_HANDLERS") or {})
ON_AI_FAILURE = globals().get("ON_AI_FAILURE") or "hangup"
if ON_AI_FAILURE not in ("hangup", "keep"):
    raise ValueError(f"ON_AI_FAILURE must be 'hangup' or 'keep', not {ON_AI_FAILURE!r}")

#: Vendor name -> coroutine function creating its client (looked up when used, so a
#: missing vendor SDK only matters to the calls that pick that vendor).
CONNECT = {
    "openai": lambda **kw: OpenAI.create_realtime_api_client(**kw),
    "gemini": lambda **kw: Gemini.create_live_api_client(**kw),
    "elevenlabs": lambda **kw: ElevenLabs.create_agents_client(**kw),
    "deepgram": lambda **kw: Deepgram.create_voice_agent_client(**kw),
    "ultravox": lambda **kw: Ultravox.create_websocket_api_client(**kw),
    "cascade": lambda **kw: Cascade.create_agent(**kw),
}

tool_calls = []


def on_call_alerting(e):
    call = e.call
    state = {"ai": None, "done": False}

    def finish(_event=None):
        if state["done"]:
            return
        state["done"] = True
        call.hangup()
        VoxEngine.terminate()

    def ai_failed(what):
        Logger.write(f"{VENDOR}: {what}")
        if ON_AI_FAILURE == "hangup":
            finish()
        else:
            Logger.write(f"{VENDOR}: the call stays up without the voice AI "
                         "(ON_AI_FAILURE = 'keep')")

    def on_tool_call(ev):
        tool_calls.append((ev.name, ev.arguments))
        handler = TOOL_HANDLERS.get(ev.name)
        if handler is None:
            result = {"error": f"unknown tool {ev.name!r}"}
        else:
            try:
                result = handler(ev.arguments)
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
        Logger.write(f"{VENDOR}: tool {ev.name}({ev.arguments}) -> {result}")
        ev.client.send_tool_result(ev.call_id, result)

    def on_error(ev):
        Logger.write(f"{VENDOR}: voice AI error: {ev.message}")

    def on_closed(ev):
        if state["done"]:
            return  # the call ended first and the session closed the client
        state["ai"] = None
        ai_failed(f"the voice AI connection ended during the call: code={ev.code} "
                  f"reason={ev.reason!r}")

    def on_disconnected(ev):
        who = "the gateway" if getattr(ev, "internal", False) else "the caller"
        Logger.write(f"call disconnected by {who}")
        finish()

    async def on_connected(_event):
        try:
            ai = await CONNECT[VENDOR](**OPTIONS)
        except Exception as exc:
            if not state["done"]:
                ai_failed(f"could not start the voice AI: {type(exc).__name__}: {exc}")
            return
        if state["done"]:
            await ai.close()
            return
        state["ai"] = ai
        ai.add_event_listener(VoiceAIEvents.ToolCall, on_tool_call)
        ai.add_event_listener(VoiceAIEvents.Error, on_error)
        ai.add_event_listener(VoiceAIEvents.WebSocketClosed, on_closed)
        VoxEngine.send_media_between(call, ai)

    call.add_event_listener(CallEvents.Connected, on_connected)
    call.add_event_listener(CallEvents.Disconnected, on_disconnected)
    call.add_event_listener(CallEvents.Failed, finish)
    call.answer()


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call_alerting)
