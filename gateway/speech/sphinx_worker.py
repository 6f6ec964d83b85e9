"""PocketSphinx worker process: one decoder, fed utterances over stdin/stdout.

Run as ``python -m gateway.speech.sphinx_worker [--opt name=value ...]``; the
parent is :class:`gateway.speech.workers.SphinxWorker`. PocketSphinx holds the GIL
while it decodes (measured: a 5 s utterance stalled an asyncio loop for ~0.9 s), so
it never runs in the gateway's process.

Framing (both directions): 1 byte opcode, 4 bytes big-endian payload length, payload.

Parent -> worker:
    ``S``  start an utterance (payload empty)
    ``F``  feed PCM16 LE mono at the model's rate (16000 Hz for the bundled en-US model)
    ``P``  ask for the partial hypothesis so far
    ``E``  end the utterance; the worker answers ``R``
Worker -> parent:
    ``K``  ready (payload: JSON ``{"load_ms": ...}``), once at start
    ``I``  partial hypothesis (JSON ``{"text": ...}``), answers ``P``
    ``R``  final result (JSON ``{"text", "confidence", "decode_ms"}``), answers ``E``
    ``X``  error (JSON ``{"error": ...}``) in place of the expected answer
"""

from __future__ import annotations

import json
import struct
import sys
import time
from typing import Any, BinaryIO

HEADER = struct.Struct(">cI")


def read_message(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    """One framed message from ``stream``; None at end of file."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    op, size = HEADER.unpack(head)
    payload = stream.read(size) if size else b""
    if len(payload) < size:
        return None
    return op, payload


def write_message(stream: BinaryIO, op: bytes, payload: Any) -> None:
    """Write one framed message (``payload`` JSON-encoded unless bytes) and flush."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stream.write(HEADER.pack(op, len(body)) + body)
    stream.flush()


#: Initial cepstral mean for telephone speech (G.711, 8 kHz upsampled to 16 kHz),
#: measured here on Asterisk's recorded prompts. PocketSphinx's live CMN starts from
#: a wideband prior and adapts over a few utterances; starting here makes a fresh
#: worker's first utterance as good as a warm one ("thank you" instead of "what").
TELEPHONE_CMNINIT = "43.4,23.2,-20.6,31.9,-23.1,6.3,1.4,-11.9,11.3,-8.4,1.3,-1.1,-2.0"


def _decoder(options: dict[str, str]) -> Any:
    from pocketsphinx import Config, Decoder

    config = Config(loglevel="FATAL")
    options = {"cmninit": TELEPHONE_CMNINIT, **options}
    for name, value in options.items():
        config[name] = _typed(value)
    return Decoder(config)


def _typed(value: str) -> Any:
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _result(decoder: Any, t0: float) -> dict[str, Any]:
    hyp = decoder.hyp()
    text = hyp.hypstr.strip() if hyp is not None and hyp.hypstr else ""
    confidence = None
    if hyp is not None and text:  # the posterior probability of the best path, 0..1
        confidence = round(min(max(float(hyp.prob), 0.0), 1.0), 4)
    return {"text": text, "confidence": confidence,
            "decode_ms": round((time.perf_counter() - t0) * 1000, 1)}


def main(argv: list[str]) -> int:
    options: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg == "--opt":
            name, _, value = next(args).partition("=")
            options[name] = value
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    t0 = time.perf_counter()
    try:
        decoder = _decoder(options)
    except Exception as exc:
        write_message(stdout, b"X", {"error": f"could not load PocketSphinx: {exc}"})
        return 1
    write_message(stdout, b"K", {"load_ms": round((time.perf_counter() - t0) * 1000)})
    in_utt = False
    while True:
        msg = read_message(stdin)
        if msg is None:
            return 0
        op, payload = msg
        try:
            if op == b"S":
                if in_utt:
                    decoder.end_utt()
                decoder.start_utt()
                in_utt = True
            elif op == b"F":
                if in_utt and payload:
                    decoder.process_raw(payload, False, False)
            elif op == b"P":
                hyp = decoder.hyp() if in_utt else None
                write_message(stdout, b"I", {"text": hyp.hypstr if hyp is not None else ""})
            elif op == b"E":
                t = time.perf_counter()
                if in_utt:
                    decoder.end_utt()
                    in_utt = False
                write_message(stdout, b"R", _result(decoder, t))
        except Exception as exc:  # report, keep serving
            in_utt = False
            write_message(stdout, b"X", {"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
