"""Outbound voice AI, the StartScenarios seed pattern.

script_custom_data is JSON: {"destination": "+15551234567" or "sip:user@host",
"callerId": "+15550001111", "instructions": "..." (optional)}. A phone number goes
out through the configured trunk (call_pstn); a SIP URI is dialled directly
(call_sip). On Connected the call is bridged to OpenAI Realtime; the session ends
when the call fails or either side hangs up.
"""

import json
import os

MODEL = os.environ.get("VGW_OPENAI_MODEL", "gpt-realtime")


def on_started(_event):
    data = json.loads(VoxEngine.custom_data() or "{}")
    destination = data["destination"]
    caller_id = data.get("callerId", "anonymous")
    instructions = data.get("instructions", "You are calling on behalf of our company. Be brief.")
    if destination.lower().startswith(("sip:", "sips:")):
        call = VoxEngine.call_sip(destination, caller_id)
    else:
        call = VoxEngine.call_pstn(destination, caller_id)

    def finish(_event=None):
        call.hangup()
        VoxEngine.terminate()

    async def on_connected(_event):
        ai = await OpenAI.create_realtime_api_client(model=MODEL, instructions=instructions)
        ai.add_event_listener(OpenAI.RealtimeAPIEvents.WebSocketClosed, finish)
        VoxEngine.send_media_between(call, ai)

    call.add_event_listener(CallEvents.Connected, on_connected)
    call.add_event_listener(CallEvents.Failed, finish)
    call.add_event_listener(CallEvents.Disconnected, finish)


VoxEngine.add_event_listener(AppEvents.Started, on_started)
