"""Call control in the runtime (no sockets): ``easy_process`` / ``forward_call_to_*``
relaying ringing, early media, answer, audio, messages and endings between two calls;
``transfer_to`` / ``send_message`` / ``send_info`` / ``start_early_media`` on a call and
the events their leg reports."""

from __future__ import annotations

import asyncio

import pytest

from gateway.media.format import PCMA_8K, PCMU_8K, AudioFrame
from gateway.runtime.call_control import MAX_BODY_BYTES
from gateway.runtime.session import Session
from tests.fakes.fake_leg import FakeLeg
from tests.unit.test_runtime import FakeDialer, make_runtime

FORWARD = """
state = {"established": [], "events": [], "failed": []}
def on_alert(e):
    def established(c1, c2):
        state["established"].append((c1.id(), c2.id()))
    call2 = VoxEngine.forward_call_to_sip(e.call, "sip:bob@127.0.0.1:5099", established,
                                          headers={"X-Via": "gw"})
    state["call1"], state["call2"] = e.call, call2
    for name in ("Ringing", "Connected", "Failed", "Disconnected"):
        call2.add_event_listener(getattr(CallEvents, name),
                                 lambda ev, n=name: state["events"].append(n))
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""


async def _forwarded(script: str = FORWARD) -> tuple[Session, FakeLeg, FakeLeg, dict]:
    rt, _, _ = make_runtime(script)
    rt.dialer = dialer = FakeDialer()
    leg1 = FakeLeg(number="agent1", callerid="+15551234")
    leg1.display_name = "Alice"
    assert await rt.on_incoming(leg1)
    await asyncio.sleep(0.01)
    (session,) = rt.sessions.values()
    (leg2,) = dialer.legs
    return session, leg1, leg2, session.namespace["state"]


async def test_forward_relays_ringing_early_media_answer_audio_and_messages() -> None:
    session, leg1, leg2, state = await _forwarded()
    call1, call2 = state["call1"], state["call2"]
    assert leg2.uri == "sip:bob@127.0.0.1:5099" and leg2.callerid == "+15551234"
    assert ("dial",) in leg2.actions
    assert call1.media_sinks == []  # call2 has no codec yet: nothing to bridge
    leg2.listener.leg_progress(180, "Ringing", {}, False)
    leg2.listener.leg_progress(180, "Ringing", {}, False)
    await asyncio.sleep(0.01)
    assert leg1.actions.count(("ring",)) == 1
    leg2.media_format = PCMA_8K  # 183 with SDP
    leg2.listener.leg_progress(183, "Session Progress", {}, True)
    await asyncio.sleep(0.01)
    assert ("early_media", None) in leg1.actions
    assert call1.media_sinks == [call2] and call2.media_sinks == [call1]
    # early audio from the callee reaches the caller, converted to its codec
    leg2.listener.leg_audio(AudioFrame(b"\xd5" * 160, PCMA_8K))
    assert leg1.played[-1].format == PCMU_8K
    leg2.listener.leg_connected({"X-Answered": "yes"})
    await asyncio.sleep(0.01)
    assert ("answer", {"X-Answered": "yes"}) in leg1.actions
    assert state["established"] == [(call1.id(), call2.id())]
    call1.leg_audio(AudioFrame(b"\xff" * 160, PCMU_8K))
    assert leg2.played[-1].format == PCMA_8K
    # messages and INFO are passed on both ways
    leg1.listener.leg_message("hello", {})
    leg2.listener.leg_info("application/json", '{"a":1}', {"X-I": "1"})
    await asyncio.sleep(0.01)
    assert ("message", "hello") in leg2.actions
    assert ("info", "application/json", '{"a":1}', {"X-I": "1"}) in leg1.actions
    # the callee hangs up: the caller is hung up and the session ends
    leg2.listener.leg_disconnected({}, True)
    await session.wait_ended(2)
    assert ("hangup",) in leg1.actions
    assert state["events"] == ["Ringing", "Ringing", "Ringing", "Connected", "Disconnected"]


async def test_callee_busy_rejects_caller_with_the_same_code() -> None:
    session, leg1, leg2, _ = await _forwarded()
    leg2.listener.leg_failed(486, "Busy Here", {})
    await session.wait_ended(2)
    assert ("reject", 486) in leg1.actions and ("answer", None) not in leg1.actions


async def test_caller_hangs_up_while_callee_rings_cancels_callee() -> None:
    session, leg1, leg2, _ = await _forwarded()
    leg2.listener.leg_progress(180, "Ringing", {}, False)
    leg1.listener.leg_failed(487, "Request Terminated", {})
    await session.wait_ended(2)
    assert ("hangup",) in leg2.actions


async def test_on_call2_failed_lets_the_scenario_decide() -> None:
    script = """
state = {"failed": []}
def on_alert(e):
    def failed(ev):
        state["failed"].append(ev.code)
        ev.call  # the failed call2
        e.call.answer()
    VoxEngine.forward_call_to_pstn(e.call, lambda n: "+1" + n, None, on_call2_failed=failed)
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""
    rt, _, _ = make_runtime(script)
    rt.dialer = dialer = FakeDialer()
    rt.trunk_uri = "sip:trunk.example.com"
    leg1 = FakeLeg(number="agent42", callerid="+15550000")
    assert await rt.on_incoming(leg1)
    await asyncio.sleep(0.01)
    (session,) = rt.sessions.values()
    (leg2,) = dialer.legs
    assert leg2.uri == "sip:+1agent42@trunk.example.com" and leg2.callerid == "+15550000"
    leg2.listener.leg_failed(503, "Service Unavailable", {})
    await asyncio.sleep(0.01)
    assert session.namespace["state"]["failed"] == [503]
    assert ("answer", None) in leg1.actions and not session.terminating
    await rt.stop()


async def test_easy_process_checks_its_arguments() -> None:
    rt, _, match = make_runtime("")
    started = await rt.start_scenarios(match, None)
    s = rt.sessions[started.session_id]
    vox = s.namespace["VoxEngine"]
    a = s.add_call(FakeLeg())
    with pytest.raises(TypeError):
        vox.easy_process(a, object())
    with pytest.raises(ValueError):
        vox.easy_process(a, a)
    await rt.stop()


# -- the Call methods ----------------------------------------------------------------------
async def test_transfer_message_info_and_early_media_on_a_call() -> None:
    rt, _, match = make_runtime("")
    started = await rt.start_scenarios(match, None)
    s = rt.sessions[started.session_id]
    leg = FakeLeg()
    call = s.add_call(leg)
    got: list[tuple[str, dict]] = []
    for name in ("TransferComplete", "TransferFailed", "MessageReceived", "InfoReceived"):
        call.add_event_listener(f"CallEvents.{name}",
                                lambda ev, n=name: got.append((n, ev.to_dict())))
    with pytest.raises(RuntimeError):
        call.transfer_to("sip:carol@example.com")  # not connected yet
    call.start_early_media({"X-E": "1"})
    call.start_early_media()  # once
    await asyncio.sleep(0.01)
    assert leg.actions.count(("early_media", {"X-E": "1"})) == 1
    call.answer()
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError):
        call.start_early_media()  # answered
    with pytest.raises(ValueError):
        call.transfer_to("carol@example.com")
    call.transfer_to({"to": "sip:carol@example.com", "headers": {"X-T": "1"}})
    with pytest.raises(RuntimeError):
        call.transfer_to("sip:dave@example.com")  # one at a time
    await asyncio.sleep(0.01)
    assert ("refer", "sip:carol@example.com", {"X-T": "1"}) in leg.actions
    call.leg_transfer_result(False, 486, "Busy Here")
    call.transfer_to("tel:+15551234")  # allowed again after the result
    call.leg_transfer_result(True, 200, "OK")
    call.send_message("hi")
    call.send_info("application/x-test", "k=v", {"X-H": "2"})
    with pytest.raises(ValueError):
        call.send_message("x" * (MAX_BODY_BYTES + 1))
    with pytest.raises(ValueError):
        call.send_info("not a type", "x")
    with pytest.raises(TypeError):
        call.send_message(b"bytes")  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert ("message", "hi") in leg.actions
    assert ("info", "application/x-test", "k=v", {"X-H": "2"}) in leg.actions
    call.leg_message("yo", {"X-M": "3"})
    call.leg_info("application/json", "{}", {})
    names = [n for n, _ in got]
    assert names == ["TransferFailed", "TransferComplete", "MessageReceived", "InfoReceived"]
    assert got[0][1]["code"] == 486 and got[0][1]["reason"] == "Busy Here"
    assert got[2][1]["text"] == "yo" and got[2][1]["headers"] == {"X-M": "3"}
    info = got[3][1]
    assert info["mime_type"] == info["mimeType"] == "application/json" and info["body"] == "{}"
    out = s.add_call(FakeLeg(incoming=False))
    with pytest.raises(RuntimeError):
        out.start_early_media()  # outgoing calls cannot
    await rt.stop()


async def test_transfer_fails_when_the_leg_cannot_send_the_refer() -> None:
    class NoDialogLeg(FakeLeg):
        async def refer(self, target: str, headers=None) -> None:
            from gateway.errors import SipError

            raise SipError("refer: leg is ended, not connected")

    rt, _, match = make_runtime("")
    started = await rt.start_scenarios(match, None)
    s = rt.sessions[started.session_id]
    call = s.add_call(NoDialogLeg())
    failed = []
    call.add_event_listener("CallEvents.TransferFailed", lambda ev: failed.append(ev.code))
    call.answer()
    await asyncio.sleep(0.01)
    call.transfer_to("sip:carol@example.com")
    await asyncio.sleep(0.01)
    assert failed == [500]
    await rt.stop()
