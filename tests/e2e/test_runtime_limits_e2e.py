"""Session limits through real SIP legs: the call limits (a StartScenarios session dialling
sipp) and the handler watchdog (a sipp call in another session keeps its audio flowing
while a handler spins; the spinning session ends with the error in its log)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.runtime.limits import CALL_LIMIT_REASON
from tests.e2e.helpers import session_id_of, wait_until
from tests.integration.sip_harness import SCENARIOS, Sipp, wait_sipp_listening
from tests.peers import free_port, free_udp_port, require_binary


@asynccontextmanager
async def sipp_calls(tmp_path: Path, *args: str, calls: int,
                     remote: str | None = None) -> AsyncIterator[Sipp]:
    """sipp handling ``calls`` calls (``-m``), in its own dir; killed at the end."""
    exe = require_binary("sipp")
    port = free_port()
    cwd = tmp_path / f"sipp{port}"
    cwd.mkdir()
    os.symlink("/usr/share/sip-tester", cwd / "pcap")
    cmd = [exe, *([remote] if remote else []), *args, "-i", "127.0.0.1", "-p", str(port),
           "-mi", "127.0.0.1", "-mp", str(free_udp_port() & ~1), "-m", str(calls),
           "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_msg", "-trace_err"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    runner = Sipp(proc, cwd, port)
    try:
        yield runner
    finally:
        runner.kill()
        await proc.wait()


def invites_received(sipp: Sipp) -> int:
    """INVITEs in sipp's message trace (a UAS sends none, so all were received)."""
    return sum(f.read_text(errors="replace").count("\nINVITE sip:")
               for f in sipp.cwd.glob("*_messages.log"))


UNANSWERED = """
import json
results = []
calls = []
def on_started(e):
    data = json.loads(VoxEngine.custom_data())
    for i in range(data["n"]):
        call = VoxEngine.call_sip(data["uri"].replace("NN", str(i)), "+15550001111")
        calls.append(call)
        call.add_event_listener(CallEvents.Failed, failed)
        call.add_event_listener(CallEvents.Ringing, ringing)
rung = set()
def ringing(e):
    rung.add(e.call.id())
    check()
def failed(e):
    results.append((e.call.id(), e.code, e.reason))
    check()
    if len(results) == len(calls):
        VoxEngine.terminate()
def check():
    # all ten real calls ring and the refused one has failed: hang up (CANCEL) the rest
    if len(rung) == 10 and any(r[1] == 403 for r in results):
        for c in calls:
            c.hangup()
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def test_eleventh_unanswered_call_fails_403_and_never_reaches_sipp(e2e, tmp_path):
    rule_id = await e2e.rule_with("limits", UNANSWERED, name="limits")
    async with sipp_calls(tmp_path, "-sf", str(SCENARIOS / "uas_ring_cancel.xml"),
                          calls=10) as uas:
        await wait_sipp_listening(uas.port)
        data = {"uri": f"sip:ringNN@127.0.0.1:{uas.port}", "n": 11}
        started = await e2e.ok("StartScenarios", rule_id=rule_id,
                               script_custom_data=json.dumps(data))
        session = e2e.gw.runtime.find_session(session_id_of(started["media_session_access_url"]))
        await session.wait_ended(30)
        assert await uas.wait(20) == 0, uas.logs()  # 10 calls: 180, CANCEL, 487, ACK
        assert invites_received(uas) == 10
    results = session.namespace["results"]
    calls = session.namespace["calls"]
    assert len(results) == 11
    refused = [r for r in results if r[1] == 403]
    assert refused == [(calls[10].id(), 403, CALL_LIMIT_REASON)]
    assert sorted(r[1] for r in results if r[1] != 403) == [487] * 10
    assert ("Call limit reached: at most 10 unanswered calls at once per session"
            in "\n".join(session.log_lines))
    hist = await e2e.ok("GetCallHistory", call_session_history_id=started[
        "call_session_history_id"], with_calls="true")
    codes = sorted(c["result_code"] for c in hist["result"][0]["calls"])
    assert codes == [403] + [487] * 10


ATTEMPTS = """
import json
results = []
def on_started(e):
    dial()
def dial():
    call = VoxEngine.call_sip(json.loads(VoxEngine.custom_data())["uri"], "+15550001111")
    call.add_event_listener(CallEvents.Failed, failed)
def failed(e):
    results.append((e.code, e.reason))
    if e.code == 403:
        VoxEngine.terminate()
    else:
        dial()
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def test_51st_call_attempt_fails_403_and_never_reaches_sipp(e2e, tmp_path):
    rule_id = await e2e.rule_with("limits", ATTEMPTS, name="attempts")
    async with sipp_calls(tmp_path, "-sf", str(SCENARIOS / "uas_486.xml"), calls=50) as uas:
        await wait_sipp_listening(uas.port)
        started = await e2e.ok("StartScenarios", rule_id=rule_id, script_custom_data=json.dumps(
            {"uri": f"sip:busy@127.0.0.1:{uas.port}"}))
        session = e2e.gw.runtime.find_session(session_id_of(started["media_session_access_url"]))
        await session.wait_ended(60)
        assert await uas.wait(20) == 0, uas.logs()
        assert invites_received(uas) == 50
    results = session.namespace["results"]
    assert results[:50] == [(486, "Busy Here")] * 50
    assert results[50:] == [(403, CALL_LIMIT_REASON)]
    assert ("Call limit reached: at most 50 call attempts per session"
            in "\n".join(session.log_lines))


ECHO = """
def on_alert(e):
    call = e.call
    call.add_event_listener(CallEvents.Connected, lambda ev: call.send_media_to(call))
    call.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())
    call.answer()
VoxEngine.add_event_listener(AppEvents.CallAlerting, on_alert)
"""

SPIN = """
def spin():
    Logger.write("spinning now")
    n = 0
    while True:
        n += 1
VoxEngine.add_event_listener(AppEvents.Started, lambda e: set_timeout(spin, 50))
"""


async def test_spinning_handler_is_interrupted_while_another_call_keeps_its_audio(
        e2e, tmp_path):
    await e2e.rule_with("echo", ECHO, name="echo")
    spin_rule = await e2e.rule_with("spin-only", SPIN, name="spin")
    runtime = e2e.gw.runtime
    async with sipp_calls(tmp_path, "-sn", "uac_pcap", "-s", "echo", calls=1,
                          remote=f"127.0.0.1:{e2e.sip_port}") as uac:
        await wait_until(lambda: any(c.state() == "CONNECTED" for s in runtime.sessions.values()
                                     for c in s.calls), 10, "the sipp call to connect")
        (echo,) = [s for s in runtime.sessions.values() if s.calls]
        (call,) = echo.calls
        await wait_until(lambda: call.played_ms >= 200, 10, "echoed audio")

        started = await e2e.ok("StartScenarios", rule_id=spin_rule)
        spinner = runtime.find_session(session_id_of(started["media_session_access_url"]))
        await spinner.wait_ended(10)
        log = "\n".join(spinner.log_lines)
        assert "spinning now" in log
        assert ("error in set_timeout callback: HandlerTimeoutError: handler kept the event "
                "loop busy for more than 1 s and was interrupted") in log

        # the other session's call still echoes audio after the spin
        played = call.played_ms
        assert not echo.ended and call.state() == "CONNECTED"
        await wait_until(lambda: call.played_ms >= played + 400, 10,
                         "the echo call to keep sending audio after the spin")
        assert await uac.wait(30) == 0, uac.logs()
    await wait_until(lambda: echo.ended, 10, "the echo session to end after BYE")
    hist = await e2e.ok("GetCallHistory", call_session_history_id=started[
        "call_session_history_id"])
    assert hist["result"][0]["finish_reason"] == "error"
