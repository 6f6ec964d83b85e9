"""Call control through real sipp legs:

- MESSAGE and INFO both ways: a sipp caller sends a MESSAGE and an INFO in the dialog;
  the scenario's ``CallEvents.MessageReceived`` / ``InfoReceived`` fire with their
  bodies and ``X-`` headers, and its ``call.send_message`` / ``call.send_info`` replies
  reach sipp (which checks their bodies and content types);
- transfer: ``call.transfer_to("sip:carol@...")`` on a sipp caller that accepts the
  REFER (202, NOTIFY sipfrag 100 then 200) fires ``CallEvents.TransferComplete``; on a
  dialled sipp callee that declines it (603), ``CallEvents.TransferFailed`` with 603.
"""

from __future__ import annotations

import json

from tests.e2e.helpers import session_id_of, wait_until
from tests.integration.sip_harness import SCENARIOS, sipp, wait_sipp_listening

TEXT = """
state = {"messages": [], "infos": []}
def on_alert(e):
    call = e.call
    def on_message(ev):
        state["messages"].append((ev.text, ev.headers))
        call.send_message("pong: " + ev.text)
    def on_info(ev):
        state["infos"].append((ev.mime_type, ev.mimeType, ev.body, ev.headers))
        call.send_info("application/x-reply", "got " + ev.body)
    call.add_event_listener(CallEvents.MessageReceived, on_message)
    call.add_event_listener(CallEvents.InfoReceived, on_info)
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.answer()
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""

TRANSFER = """
import json
TARGET = "sip:carol@127.0.0.1:5999"
state = {"events": []}

def control(call):
    def complete(ev):
        state["events"].append(("complete", ev.code, ev.reason))
        call.hangup()
    def failed(ev):
        state["events"].append(("failed", ev.code, ev.reason))
        call.hangup()
    call.add_event_listener(CallEvents.TransferComplete, complete)
    call.add_event_listener(CallEvents.TransferFailed, failed)
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.add_event_listener(CallEvents.Failed, lambda ev: VoxEngine.terminate())

def on_alert(e):  # inbound: answer, then transfer once the caller has ACKed
    control(e.call)
    e.call.add_event_listener(
        CallEvents.Connected, lambda ev: set_timeout(lambda: e.call.transfer_to(TARGET), 300))
    e.call.answer()

def on_started(e):  # outbound (StartScenarios): dial, transfer when answered
    if VoxEngine.custom_data():
        call = VoxEngine.call_sip(json.loads(VoxEngine.custom_data())["to"], "gw")
        control(call)
        call.add_event_listener(CallEvents.Connected, lambda ev: call.transfer_to(TARGET))

VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def _ended_session(e2e):
    runtime = e2e.gw.runtime
    await wait_until(lambda: runtime.recent and not runtime.sessions, 10, "the session to end")
    (session,) = runtime.recent
    return session


async def test_message_and_info_both_ways_with_a_sipp_caller(e2e, tmp_path):
    await e2e.rule_with("texter", TEXT, name="texter")
    async with sipp(tmp_path, "-sf", str(SCENARIOS / "uac_message_info.xml"), "-s", "texter",
                    remote=f"127.0.0.1:{e2e.sip_port}") as caller:
        # sipp fails unless our MESSAGE and INFO replies arrive with the right bodies
        assert await caller.wait(30) == 0, caller.logs()
    session = await _ended_session(e2e)
    state = session.namespace["state"]
    assert [(t.strip(), h) for t, h in state["messages"]] == [
        ("hello from sipp", {"X-Msg": "m1"})]
    (info,) = state["infos"]
    assert info[0] == info[1] == "application/json"
    assert json.loads(info[2]) == {"k": "v"} and info[3] == {"X-Info": "i1"}


async def test_transfer_accepted_by_sipp_fires_transfer_complete(e2e, tmp_path):
    await e2e.rule_with("transferee", TRANSFER, name="transferee")
    async with sipp(tmp_path, "-sf", str(SCENARIOS / "uac_refer_accept.xml"),
                    "-s", "transferee", remote=f"127.0.0.1:{e2e.sip_port}") as caller:
        # sipp fails unless it gets the REFER, 200s to both NOTIFYs and then our BYE
        assert await caller.wait(30) == 0, caller.logs()
    session = await _ended_session(e2e)
    assert session.namespace["state"]["events"] == [("complete", 200, "OK")]


async def test_transfer_declined_by_sipp_fires_transfer_failed(e2e, tmp_path):
    rule_id = await e2e.rule_with("transferor", TRANSFER, name="transferor")
    async with sipp(tmp_path, "-sf", str(SCENARIOS / "uas_refer_decline.xml")) as callee:
        await wait_sipp_listening(callee.port)
        data = {"to": f"sip:bob@127.0.0.1:{callee.port}"}
        started = await e2e.ok("StartScenarios", rule_id=rule_id,
                               script_custom_data=json.dumps(data))
        assert await callee.wait(30) == 0, callee.logs()  # REFER declined, our BYE seen
    session = await _ended_session(e2e)
    assert session.id == session_id_of(started["media_session_access_url"])
    assert session.namespace["state"]["events"] == [("failed", 603, "Decline")]
