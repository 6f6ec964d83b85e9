"""Inbound voice AI, the rule ``vgw serve`` creates on a fresh install: answer the call
and bridge it to a voice agent until either side ends.

* With ``OPENAI_API_KEY`` set: OpenAI Realtime (the connector reads OPENAI_API_KEY /
  OPENAI_BASE_URL like the official SDK). VGW_OPENAI_MODEL (default gpt-realtime),
  VGW_AI_INSTRUCTIONS, VGW_AI_GREETING (the AI speaks first with this instruction).
* Without it: the offline cascade (PocketSphinx speech recognition, the built-in
  rule-based responder, espeak-ng speech), so a fresh install answers with no
  network and no keys. Set OPENAI_API_KEY to switch; VGW_AI_VENDOR=cascade keeps
  the cascade even with a key.

Bind it to a rule whose pattern matches the numbers (SIP users) callers dial.
"""

import os

MODEL = os.environ.get("VGW_OPENAI_MODEL", "gpt-realtime")
INSTRUCTIONS = os.environ.get(
    "VGW_AI_INSTRUCTIONS", "You are a friendly phone assistant. Keep answers short.")
GREETING = os.environ.get("VGW_AI_GREETING", "")
USE_OPENAI = (bool(os.environ.get("OPENAI_API_KEY"))
              and os.environ.get("VGW_AI_VENDOR", "openai") != "cascade")


async def connect_agent():
    if USE_OPENAI:
        ai = await OpenAI.create_realtime_api_client(model=MODEL, instructions=INSTRUCTIONS)
        ai.add_event_listener(
            OpenAI.RealtimeAPIEvents.Error,
            lambda ev: Logger.write(f"OpenAI error: {ev.data}"))
        if GREETING:
            ai.response_create(instructions=GREETING)
        return ai
    Logger.write("answering with the offline cascade (set OPENAI_API_KEY for OpenAI Realtime)")
    ai = await Cascade.create_agent(instructions=INSTRUCTIONS, greeting=GREETING or None)
    ai.add_event_listener(VoiceAIEvents.Error, lambda ev: Logger.write(f"cascade: {ev.message}"))
    return ai


def on_call_alerting(e):
    call = e.call

    def finish(_event=None):
        call.hangup()
        VoxEngine.terminate()

    async def on_connected(_event):
        ai = await connect_agent()
        ai.add_event_listener(VoiceAIEvents.WebSocketClosed, finish)
        VoxEngine.send_media_between(call, ai)

    call.add_event_listener(CallEvents.Connected, on_connected)
    call.add_event_listener(CallEvents.Disconnected, finish)
    call.add_event_listener(CallEvents.Failed, finish)
    call.answer()


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call_alerting)
