"""Inbound: the real baresip dials the gateway, a rule routes it to scenarios/inbound_ai.py,
and the call is bridged to the fake OpenAI Realtime server (echo mode) through the SDK.

baresip sends a human recording; the fake must receive that recording, and baresip
must hear it echoed back (cross-correlation >= 0.9 after G.711)."""

from __future__ import annotations

import numpy as np

from tests.audio import best_alignment, pcm, read_wav, segment_match, speech, write_wav
from tests.e2e.baresip import Baresip
from tests.e2e.conftest import shipped
from tests.e2e.helpers import wait_until


async def test_baresip_call_bridged_to_openai_echo(e2e, tmp_path):
    await e2e.rule_with("agent", shipped("inbound_ai.py"), name="inbound")
    source = speech("hello-world", "agent-pass")  # 4.7 s of human speech
    wav = tmp_path / "speech8k.wav"
    write_wav(wav, source)
    bs = Baresip(tmp_path, wav)
    try:
        await bs.dial(f"sip:agent@127.0.0.1:{e2e.sip_port}", timeout_s=20)
        # the call hangs up at the end of the file; the session then ends and writes its CDR
        await wait_until(lambda: e2e.fake.connected, 10, "the AI connection")
        await wait_until(lambda: not e2e.gw.runtime.sessions and e2e.fake.closed_by_client,
                         20, "the session to end after baresip hung up")
    finally:
        await bs.stop()

    ref = pcm(source, "pcm16")
    fmt = e2e.fake.input_format["type"]
    assert fmt in ("audio/pcmu", "audio/pcma"), f"G.711 passthrough expected, got {fmt}"
    got = pcm(bytes(e2e.fake.received_audio), fmt.split("/")[1])
    lag, r = best_alignment(ref, got)
    found = segment_match(ref, got)
    print(f"AI got r={r:.3f} lag={lag} segments={found:.0%}")
    # every 0.5 s of the recording arrived (cross-correlation >= 0.9 after G.711)
    assert found >= 0.9, f"only {found:.0%} of the recording reached the AI (r={r:.3f})"

    (dec,) = bs.dumps("dec")
    heard, rate = read_wav(dec)
    assert rate == 8000
    heard_found = segment_match(ref, heard)
    # the caller hangs up at the end of its file, so the echo's tail is cut off
    assert heard_found >= 0.75, f"the caller heard only {heard_found:.0%} of the echo"
    assert np.abs(heard).max() > 1000

    hist = await e2e.ok("GetCallHistory", with_calls="true")
    (sess,) = hist["result"]
    (call,) = sess["calls"]
    assert call["incoming"] and call["successful"]
    assert call["remote_number"] == "bs" and call["local_number"] == "agent"
