"""A Voice AI vendor fails during a real SIP call; the call survives (ON_AI_FAILURE = "keep").

Each test runs two real sipp callers through the shipped generic scenario
(scenarios/inbound_voice_ai.py) against the vendors' fakes:

* a **control** call (rule ``control``) bridged to the ``e2e`` fixture's OpenAI fake
  in echo mode, which must not notice anything;
* a **failing** call (rule ``fail``, config ``ON_AI_FAILURE = "keep"``) whose vendor
  (a) refuses the API key, so the connect fails with a ``ConnectorError`` naming the
  refusal, (b) closes the connection mid-call with a close code and reason, or
  (c) sends malformed JSON mid-call and then goes on working (a tool call round-trips
  and the caller's audio still reaches it).

Both callers stream G.711 μ-law speech (``rtp_stream``) and hang up only when the test
sends them a SIP INFO (the caller scenario below waits for it), so the gateway never
has a reason to end a call itself: a BYE from the gateway would make sipp fail. Each
test checks that the failing call stays connected after the failure until its caller
hangs up (sipp exits 0, the CDR says ``normal`` with a duration covering the time held
after the failure), that the control call and its AI connection are untouched, and
that the failing session's log (``GET /logs/{id}``) names what happened.

Nothing is asserted on wall time; the only waits are for conditions (with generous
limits) and one fixed hold after the failure that the CDR duration must cover.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.media.g711 import pcm16_to_ulaw
from gateway.runtime.constants import CallState
from tests.audio import speech
from tests.e2e.conftest import API_KEY, E2E, shipped
from tests.e2e.helpers import wait_until
from tests.fakes.fake_deepgram_agent import FakeVoiceAgentServer
from tests.fakes.fake_elevenlabs_agents import FakeAgentsServer
from tests.fakes.fake_gemini_live import FakeGeminiLiveServer
from tests.fakes.fake_openai_realtime import FakeRealtimeServer
from tests.integration.sip_harness import Sipp, sipp

KEY = "failure-e2e-key-0123456789"
WRONG_KEY = "wrong-key-9876543210"
#: Seconds the failing call is held after the failure before its caller hangs up.
HOLD_S = 2.0
TOOL = {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
HANDLERS = 'TOOL_HANDLERS = {"get_weather": lambda args: {"city": args["city"], "temp_c": 21}}\n'

#: A caller streaming μ-law speech in a loop until it receives an INFO (from the test,
#: not answered), then hanging up.
CALLER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAC that hangs up on a signal">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag20[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="183" optional="true" />
  <recv response="200" rtd="true" rrs="true" />
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag20[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <nop><action><exec rtp_stream="{audio},-1,0" /></action></nop>
  <recv request="INFO" />
  <nop><action><exec rtp_stream="pause" /></action></nop>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag20[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" />
</scenario>
"""


# -- the caller --------------------------------------------------------------------------
class Caller:
    """One sipp caller dialling ``service`` that hangs up when :meth:`hang_up` is called."""

    def __init__(self, runner: Sipp, call_id: str) -> None:
        self.runner = runner
        self.call_id = call_id

    async def hang_up(self) -> None:
        """Signal the caller: a SIP INFO in its dialog, after which it sends BYE.

        The caller does not answer the INFO (sipp would send any response to the
        gateway, its only peer); loopback UDP does not lose it.
        """
        info = (f"INFO sip:sipp@127.0.0.1:{self.runner.port} SIP/2.0\r\n"
                "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-hangup\r\n"
                "From: <sip:test@127.0.0.1>;tag=hangup\r\n"
                "To: <sip:sipp@127.0.0.1>\r\n"
                f"Call-ID: {self.call_id}\r\n"
                "CSeq: 1 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            msg = info.replace("{port}", str(s.getsockname()[1]))
            s.sendto(msg.encode(), ("127.0.0.1", self.runner.port))

    async def finished_ok(self) -> None:
        """The caller hung up itself and its BYE was answered: sipp exits 0."""
        assert await self.runner.wait(15) == 0, self.runner.logs()


@contextlib.asynccontextmanager
async def caller(tmp_path: Path, e2e: E2E, service: str) -> AsyncIterator[Caller]:
    """A sipp caller dialling ``service`` at the gateway; killed at the end if still up."""
    audio = tmp_path / "caller.ul"
    if not audio.exists():
        audio.write_bytes(pcm16_to_ulaw(speech("vm-intro")))
    xml = tmp_path / "uac_hangup_on_info.xml"
    if not xml.exists():
        xml.write_text(CALLER_XML.replace("{audio}", str(audio)))
    call_id = f"vgw-{service}-1@127.0.0.1"
    async with sipp(tmp_path, "-sf", str(xml), "-s", service, "-cid_str", f"vgw-{service}-%u@%s",
                    remote=f"127.0.0.1:{e2e.sip_port}") as runner:
        yield Caller(runner, call_id)


# -- one adapter per vendor of the failing call -----------------------------------------
class Vendor:
    """Drives the failing call's vendor fake."""

    name = ""
    fake: Any

    async def start(self, stack: contextlib.AsyncExitStack,
                    monkeypatch: pytest.MonkeyPatch) -> None:
        raise NotImplementedError

    def options(self, key: str) -> dict[str, Any]:
        raise NotImplementedError

    def config(self, key: str) -> str:
        return (f"VENDOR = {self.name!r}\nOPTIONS = {json.dumps(self.options(key))}\n"
                f"ON_AI_FAILURE = 'keep'\n{HANDLERS}")

    def audio_received(self) -> int:
        return len(self.fake.received_audio)

    async def close(self, code: int, reason: str) -> None:
        await self.fake.close_connection(code, reason)

    async def send_malformed(self, text: str) -> None:
        await self.fake.send_raw(text)

    async def tool_round_trip(self) -> Any:
        raise NotImplementedError


class OpenAIVendor(Vendor):
    name = "openai"

    async def start(self, stack, monkeypatch):
        self.fake = await stack.enter_async_context(FakeRealtimeServer(api_key=KEY))

    def options(self, key):
        return {"api_key": key, "base_url": self.fake.base_url,
                "tools": [{"type": "function", **TOOL}]}

    async def tool_round_trip(self):
        call_id = await self.fake.function_call(TOOL["name"], {"city": "Paris"})
        item = await self.fake.wait_for(
            "conversation.item.create", timeout=10,
            predicate=lambda ev: ev["item"].get("type") == "function_call_output")
        assert item["item"]["call_id"] == call_id
        return json.loads(item["item"]["output"])


class DeepgramVendor(Vendor):
    name = "deepgram"

    async def start(self, stack, monkeypatch):
        self.fake = await stack.enter_async_context(FakeVoiceAgentServer(api_key=KEY))

    def options(self, key):
        return {"api_key": key, "base_url": self.fake.url}


class GeminiVendor(Vendor):
    name = "gemini"

    async def start(self, stack, monkeypatch):
        self.fake = await stack.enter_async_context(FakeGeminiLiveServer(api_key=KEY))
        monkeypatch.setenv("SSL_CERT_FILE", self.fake.ca_file)  # the SDK forces wss

    def options(self, key):
        return {"api_key": key, "base_url": self.fake.base_url}


class ElevenLabsVendor(Vendor):
    name = "elevenlabs"

    async def start(self, stack, monkeypatch):
        monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)  # a public agent
        self.fake = await stack.enter_async_context(FakeAgentsServer(
            agent_id="agent_fail", input_format="ulaw_8000", output_format="ulaw_8000"))

    def options(self, key):
        return {"agent_id": "agent_fail", "base_url": self.fake.base_url}

    async def tool_round_trip(self):
        call_id = await self.fake.client_tool_call(TOOL["name"], {"city": "Paris"})
        msg = await self.fake.wait_for("client_tool_result", timeout=10)
        assert msg["tool_call_id"] == call_id and msg["is_error"] is False
        return json.loads(msg["result"])


VENDORS: dict[str, Callable[[], Vendor]] = {
    v.name: v for v in (OpenAIVendor, DeepgramVendor, GeminiVendor, ElevenLabsVendor)}

#: (case, vendor of the failing call): OpenAI for every case, one other vendor each.
CASES = [("auth", "openai"), ("auth", "deepgram"), ("close", "openai"), ("close", "gemini"),
         ("malformed", "openai"), ("malformed", "elevenlabs")]


# -- helpers ---------------------------------------------------------------------------------
def session_of(e2e: E2E, rule: str) -> Any:
    """The running or ended session of ``rule`` (None before it exists)."""
    for s in [*e2e.gw.runtime.sessions.values(), *e2e.gw.runtime.recent]:
        if s.match.rule_name == rule:
            return s
    return None


def lines_with(session: Any, text: str) -> list[str]:
    return [line for line in session.log_lines if text in line]


async def wait_log(session: Any, text: str, timeout: float = 15) -> str:
    """The first session log line containing ``text`` (waits for it)."""
    await wait_until(lambda: bool(lines_with(session, text)), timeout,
                     f"{text!r} in the session log:\n" + "\n".join(session.log_lines))
    return lines_with(session, text)[0]


def stamp_of(line: str) -> datetime:
    """The UTC time a session log line was written (``YYYY-mm-dd HH:MM:SS.fff text``)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


async def call_history(e2e: E2E, rule: str) -> dict[str, Any]:
    hist = await e2e.ok("GetCallHistory", with_calls="true", rule_name=rule)
    (sess,) = hist["result"]
    return sess


CONTROL = 'VENDOR = "openai"\n'  # no OPTIONS: the e2e fixture's fake (echo) from the env


# -- the test ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "vendor_name"), CASES)
async def test_vendor_failure_keeps_the_call_up(e2e, tmp_path, monkeypatch, case, vendor_name):
    vendor = VENDORS[vendor_name]()
    control_fake = e2e.fake  # echo mode: the control call's AI
    async with contextlib.AsyncExitStack() as stack:
        await vendor.start(stack, monkeypatch)
        await e2e.rule_with("control", CONTROL, shipped("inbound_voice_ai.py"), name="control")
        key = WRONG_KEY if case == "auth" else KEY
        await e2e.rule_with("fail", vendor.config(key), shipped("inbound_voice_ai.py"),
                            name="fail")

        control = await stack.enter_async_context(caller(tmp_path, e2e, "control"))
        await wait_until(lambda: len(control_fake.received_audio) >= 8000, 15,
                         "the control call's audio to reach its AI")
        failing = await stack.enter_async_context(caller(tmp_path, e2e, "fail"))
        await wait_until(lambda: session_of(e2e, "fail") is not None, 10, "the failing session")
        session = session_of(e2e, "fail")

        # -- the failure --------------------------------------------------------------------
        if case == "auth":
            line = await wait_log(session, "could not start the voice AI")
            assert "ConnectorError" in line and "401" in line, line
            assert "authentication refused" in line, line
            assert WRONG_KEY not in "\n".join(session.log_lines)
            statuses = [h.get("status") for h in vendor.fake.handshakes]
            assert statuses == [401], statuses  # refused, and not retried
        else:
            await wait_until(lambda: vendor.audio_received() >= 1600, 15,
                             f"the failing call's audio to reach {vendor_name}")
            if case == "close":
                await vendor.close(1011, "upstream model failed")
                line = await wait_log(session, "connection ended during the call")
                assert "code=1011" in line and "reason='upstream model failed'" in line, line
                if vendor_name == "gemini":  # Gemini reports errors by closing
                    await wait_log(session, "gemini closed the session: code 1011: "
                                            "upstream model failed")
            else:
                await vendor.send_malformed('{"type": "response.done", oops')
                line = await wait_log(session, f"malformed JSON from {vendor_name}")
                assert "oops" in line, line  # the excerpt
                await wait_log(session, f"{vendor_name}: voice AI error: malformed JSON")
        failed_at = stamp_of(line)
        (call,) = session.calls
        if case != "malformed":
            await wait_log(session, "the call stays up without the voice AI")
        control_before = len(control_fake.received_audio)

        # -- the call goes on -----------------------------------------------------------------
        if case == "malformed":  # the client keeps working: a tool call and audio
            heard = vendor.audio_received()
            assert await vendor.tool_round_trip() == {"city": "Paris", "temp_c": 21}
            assert session.namespace["tool_calls"] == [("get_weather", {"city": "Paris"})]
            await wait_until(lambda: vendor.audio_received() >= heard + 1600, 10,
                             "caller audio after the malformed frame")
        await asyncio.sleep(HOLD_S)  # the call is held; the CDR must cover this time
        assert call.state() == CallState.CONNECTED, session.log_lines
        assert not session.ended

        # the control call and its AI connection never noticed
        await wait_until(lambda: len(control_fake.received_audio) >= control_before + 1600, 10,
                         "the control call's audio after the failure")
        assert control_fake.connected and control_fake.closed_by_client == []

        # -- the caller hangs up; the gateway never did ------------------------------------
        await failing.hang_up()
        await failing.finished_ok()
        await wait_until(lambda: session.ended, 10, "the failing session to end")
        await control.hang_up()
        await control.finished_ok()
        await wait_until(lambda: not e2e.gw.runtime.sessions, 10, "every session to end")

    # the failing call's CDR: answered, ended normally by the caller after the hold
    rec = call.cdr
    assert rec.end_time is not None and rec.end_time > failed_at
    sess = await call_history(e2e, "fail")
    assert sess["finish_reason"] == "normal"
    (cdr,) = sess["calls"]
    assert cdr["successful"] and cdr["finish_reason"] == "normal", cdr
    assert cdr["duration"] >= HOLD_S, cdr
    log = (await e2e.http.get(f"/logs/{session.id}",
                              params={"account_id": "1", "api_key": API_KEY})).text
    assert "call disconnected by the caller" in log, log
    assert line.split(" ", 2)[2] in log  # the failure, as the session log download has it
    if case == "malformed":
        assert f"{vendor_name}: error: malformed JSON from {vendor_name}" in log, log
        assert "the call stays up without the voice AI" not in log
    else:
        assert "the call stays up without the voice AI (ON_AI_FAILURE = 'keep')" in log, log

    # the control session: no error, ended normally by its caller
    control_session = session_of(e2e, "control")
    control_log = "\n".join(control_session.log_lines)
    assert "error" not in control_log.lower() and "voice AI" not in control_log, control_log
    assert "call disconnected by the caller" in control_log
    ctrl = await call_history(e2e, "control")
    assert ctrl["finish_reason"] == "normal" and ctrl["calls"][0]["finish_reason"] == "normal"
    for fake in (vendor.fake, control_fake):  # nothing either side sent broke the protocol
        assert fake.invalid_received == [] and fake.invalid_sent == []
