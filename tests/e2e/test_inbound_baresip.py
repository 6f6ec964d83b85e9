"""Inbound: the real baresip dials the gateway, a rule routes it to scenarios/inbound_ai.py,
and the call is bridged to the fake OpenAI Realtime server (echo mode) through the SDK.

baresip sends a human recording; the fake must receive that recording, and baresip
must hear it echoed back (cross-correlation >= 0.9 after G.711)."""

from __future__ import annotations

import numpy as np

from tests.audio import best_alignment, pcm, read_wav, speech, write_wav
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
    # audio sent before the AI websocket is up (the first 20-150 ms) cannot reach it
    assert -2400 <= lag and lag + len(ref) <= len(got) + 800, (lag, len(ref), len(got))
    assert r >= 0.9, f"AI received audio correlates {r:.3f} with the recording"

    (dec,) = bs.dumps("dec")
    heard, rate = read_wav(dec)
    assert rate == 8000
    lag2, r2 = best_alignment(ref, heard)
    overlap = min(len(ref), len(heard) - max(lag2, 0)) / len(ref)
    print(f"AI got r={r:.3f} lag={lag}; caller heard r={r2:.3f} lag={lag2} overlap={overlap:.2f}")
    assert r2 >= 0.9, f"caller heard the echo with correlation {r2:.3f} (lag {lag2})"
    assert overlap > 0.5, f"only {overlap:.0%} of the echo reached the caller"
    assert np.abs(heard).max() > 1000

    hist = await e2e.ok("GetCallHistory", with_calls="true")
    (sess,) = hist["result"]
    (call,) = sess["calls"]
    assert call["incoming"] and call["successful"]
    assert call["remote_number"] == "bs" and call["local_number"] == "agent"
