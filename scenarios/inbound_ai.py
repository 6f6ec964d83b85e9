"""Inbound voice AI: answer the call, bridge it to OpenAI Realtime, end when either side ends.

Bind it to a rule whose pattern matches the numbers (SIP users) callers dial. The
OpenAI connector reads OPENAI_API_KEY / OPENAI_BASE_URL like the official SDK.
Optional environment: VGW_OPENAI_MODEL (default gpt-realtime), VGW_AI_INSTRUCTIONS,
VGW_AI_GREETING (when set, the AI speaks first with this instruction).
"""

import os

MODEL = os.environ.get("VGW_OPENAI_MODEL", "gpt-realtime")
INSTRUCTIONS = os.environ.get(
    "VGW_AI_INSTRUCTIONS", "You are a friendly phone assistant. Keep answers short.")
GREETING = os.environ.get("VGW_AI_GREETING", "")


def on_call_alerting(e):
    call = e.call
    state = {"ai": None}

    def finish(_event=None):
        call.hangup()
        VoxEngine.terminate()

    async def on_connected(_event):
        ai = await OpenAI.create_realtime_api_client(model=MODEL, instructions=INSTRUCTIONS)
        state["ai"] = ai
        ai.add_event_listener(OpenAI.RealtimeAPIEvents.WebSocketClosed, finish)
        ai.add_event_listener(
            OpenAI.RealtimeAPIEvents.Error,
            lambda ev: Logger.write(f"OpenAI error: {ev.data}"))
        VoxEngine.send_media_between(call, ai)
        if GREETING:
            ai.response_create(instructions=GREETING)

    call.add_event_listener(CallEvents.Connected, on_connected)
    call.add_event_listener(CallEvents.Disconnected, finish)
    call.add_event_listener(CallEvents.Failed, finish)
    call.answer()


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call_alerting)
