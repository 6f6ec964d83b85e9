"""Offline cascade turn latency, and how many concurrent cascade calls one machine takes.

    python bench/cascade_turn.py                      # 20 turns on one call, then N = 2, 4, 6 ...
    python bench/cascade_turn.py --calls 1 4 8 --turns 20

Each simulated caller is a media unit sending G.711 μ-law 20 ms frames at real time,
paced by one shared 20 ms clock like the gateway's legs: a human recording from
asterisk-core-sounds-en-wav, then silence while the agent answers, turn after turn.
Each caller is bridged to its own cascade agent exactly as a scenario does it
(``send_media_between``): webrtcvad turns, PocketSphinx in the shared worker pool
(``--workers``, default one per core), the offline responder, espeak-ng.

Figures per load point N (all turns of all callers):

* ``vad end -> audio``: the agent's ``TurnLatency.speech_end_to_audio_ms``, from the
  moment the VAD stop window closed to the first synthesised byte leaving the agent;
* ``speech end -> audio``: the same from the caller's last speech sample (adds the stop
  window, ``--stop-ms``, 600 ms by default): what a caller perceives as the pause;
* stt / llm / tts: the split of the turn (final recognition pass, responder's first
  token, espeak-ng's first byte);
* loop lag p99/max: how late the shared 20 ms clock ticked (the event loop stays free).

The search steps N up until the p50 of ``vad end -> audio`` doubles against N=1 and
prints the highest N below that.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from connectors.base import VoiceAIEvents
from connectors.cascade import create_agent
from gateway import speech
from gateway.media.format import PCMU_8K, AudioFrame
from gateway.media.g711 import pcm16_to_ulaw
from gateway.runtime.media_unit import MediaUnit

SOUNDS = Path("/usr/share/asterisk/sounds/en")
PROMPTS = ["auth-thankyou", "vm-goodbye", "hello-world", "conf-thereare", "vm-press",
           "tt-weasels", "agent-pass"]
FRAME = 160  # μ-law bytes in 20 ms


def load(name: str) -> bytes:
    import wave

    with wave.open(str(SOUNDS / f"{name}.wav"), "rb") as w:
        assert w.getframerate() == 8000 and w.getsampwidth() == 2
        pcm = w.readframes(w.getnframes())
    ulaw = pcm16_to_ulaw(pcm)
    return ulaw + b"\xff" * (-len(ulaw) % FRAME)


class Caller(MediaUnit):
    """A simulated SIP caller: emits μ-law frames on the shared clock, drops what it hears."""

    def __init__(self) -> None:
        super().__init__()
        self.input_format = self.output_format = PCMU_8K
        self.queue: list[bytes] = []
        self.heard = 0
        self.speech_end: list[float] = []  # wall time of each utterance's last frame

    def say(self, audio: bytes, then_silence_ms: int) -> None:
        frames = [audio[i:i + FRAME] for i in range(0, len(audio), FRAME)]
        self.queue += frames + [b"__end__"] + [b"\xff" * FRAME] * (then_silence_ms // 20)

    def tick(self) -> bool:
        """Send one frame; False when nothing is left to say."""
        while self.queue and self.queue[0] == b"__end__":
            self.queue.pop(0)
            self.speech_end.append(time.perf_counter())
        if not self.queue:
            return False
        self._emit(AudioFrame(self.queue.pop(0), PCMU_8K))
        return True

    def _on_media(self, frame: AudioFrame) -> None:
        self.heard += len(frame.data)


async def run_point(n: int, turns: int, args: argparse.Namespace) -> dict[str, object]:
    prompts = {name: load(name) for name in PROMPTS}
    callers, agents, latencies = [], [], []
    for i in range(n):
        agent = await create_agent(greeting="", vad={"stop_ms": args.stop_ms})
        caller = Caller()
        caller.send_media_to(agent)
        agent.send_media_to(caller)
        rec: list[tuple[float, object]] = []
        agent.add_event_listener(
            VoiceAIEvents.TurnLatency,
            lambda ev, rec=rec: rec.append((time.perf_counter(), ev)))
        # stagger the callers so their utterances do not all start on one tick
        lead = int(random.Random(i).uniform(0, 3000)) // 20 * 20
        caller.queue += [b"\xff" * FRAME] * (lead // 20)
        order = random.Random(100 + i).sample(PROMPTS * (turns // len(PROMPTS) + 1), turns)
        for name in order:
            caller.say(prompts[name], args.gap_ms)
        callers.append(caller)
        agents.append(agent)
        latencies.append(rec)
    lags: list[float] = []
    period = 0.02
    start = time.perf_counter()
    k = 0
    while True:
        k += 1
        target = start + k * period
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, (time.perf_counter() - target) * 1000))
        if args.debug_lag and lags[-1] > 20:
            print(f"  tick {k}: {lags[-1]:.0f} ms late", flush=True)
        busy = [c.tick() for c in callers]
        if not any(busy):
            break
    await asyncio.sleep(2.0)  # the last answers
    for agent in agents:
        await agent.close()
    vad_ms, perceived, stt, llm, tts = [], [], [], [], []
    missing = 0
    for caller, rec in zip(callers, latencies, strict=True):
        ends = caller.speech_end
        for when, ev in rec:
            vad_ms.append(ev.speech_end_to_audio_ms)
            stt.append(ev.stt_ms)
            llm.append(ev.llm_first_token_ms)
            tts.append(ev.tts_first_byte_ms)
            first_audio = when
            before = [e for e in ends if e <= first_audio]
            if before:
                perceived.append((first_audio - before[-1]) * 1000)
        missing += max(0, len(ends) - len(rec))
    return {"n": n, "turns": len(vad_ms), "missing": missing, "vad": vad_ms,
            "perceived": perceived, "stt": stt, "llm": llm, "tts": tts, "lags": lags}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def show(res: dict[str, object]) -> str:
    def p(key: str) -> str:
        v = res[key]
        return f"{pct(v, 50):6.0f} / {pct(v, 95):6.0f}"  # type: ignore[arg-type]

    lags = res["lags"]
    return (f"| {res['n']:>3} | {res['turns']:>5} | {res['missing']:>4} | {p('vad')} | "
            f"{p('perceived')} | {pct(res['stt'], 50):5.0f} | {pct(res['llm'], 50):5.1f} | "
            f"{pct(res['tts'], 50):5.0f} | {pct(lags, 99):5.1f} / {max(lags):6.1f} |")


async def main(args: argparse.Namespace) -> None:
    speech.configure(workers=args.workers)
    print(f"cascade turn benchmark: {os.cpu_count()} CPUs, {speech.worker_count()} "
          f"PocketSphinx workers, stop window {args.stop_ms} ms, gap {args.gap_ms} ms")
    await speech.start_speech(speech.worker_count())
    print("| N | turns | lost | vad end->audio p50/p95 ms | speech end->audio p50/p95 ms "
          "| stt p50 | llm p50 | tts p50 | loop lag p99/max ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = None
    best = 0
    points = list(args.calls)
    i = 0
    while i < len(points):
        n = points[i]
        turns = args.turns if n == 1 else max(3, -(-args.turns // n))
        res = await run_point(n, turns, args)
        print(show(res), flush=True)
        p50 = pct(res["vad"], 50)  # type: ignore[arg-type]
        if base is None:
            base = p50
        doubled = p50 >= 2 * base or res["missing"]
        if not doubled:
            best = n
        if args.search and not doubled and i == len(points) - 1:
            points.append(n + max(1, n // 2))
        i += 1
    if base is not None:
        print(f"\nN=1 p50 {base:.0f} ms; highest N with p50 below 2x that and no lost turn: "
              f"{best}")
    await speech.close_speech()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--turns", type=int, default=20, help="turns at N=1 (total at N>1)")
    ap.add_argument("--gap-ms", type=int, default=3500,
                    help="caller silence after each utterance (the agent answers in it)")
    ap.add_argument("--stop-ms", type=int, default=600, help="VAD stop window")
    ap.add_argument("--workers", type=int, default=None, help="PocketSphinx processes")
    ap.add_argument("--debug-lag", action="store_true", help="print ticks > 20 ms late")
    ap.add_argument("--no-search", dest="search", action="store_false",
                    help="only the given N, do not step up until the figure doubles")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(main(args))
    except ImportError:
        asyncio.run(main(args))
