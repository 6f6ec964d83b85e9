"""Spawner process: runs short-lived commands (espeak-ng) for the gateway and streams
their stdout back over one pipe.

Why: starting a child process from the gateway forks the gateway. With uvloop
(libuv ``uv_spawn``) that fork copies the page tables of a process of a few hundred
MB and holds the event loop for 10-35 ms each time (measured here), a hitch in every
call's 20 ms media clock. This process is small, so its forks are cheap, and the
gateway only writes and reads a pipe. Run as ``python -m gateway.speech.spawn_worker``;
the parent is :class:`gateway.speech.spawner.Spawner`.

Framing (both directions): 1 byte opcode, 4 bytes job id, 4 bytes payload length
(big-endian), payload.

Parent -> spawner: ``R`` run (payload: JSON list, the argv), ``C`` cancel (kill) a job.
Spawner -> parent: ``O`` stdout bytes of a job, ``D`` job done (payload: JSON
``{"code": exit status, "stderr": last 500 bytes}``), ``E`` the job could not start
(JSON ``{"error": ...}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import sys

HEADER = struct.Struct(">cII")


class _Server:
    def __init__(self, out: asyncio.StreamWriter | None) -> None:
        self.out = out
        self.jobs: dict[int, asyncio.subprocess.Process] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, op: bytes, job: int, payload: bytes) -> None:
        sys.stdout.buffer.write(HEADER.pack(op, job, len(payload)) + payload)
        sys.stdout.buffer.flush()

    async def run(self, job: int, argv: list[str]) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            self.send(b"E", job, json.dumps({"error": str(exc)}).encode())
            return
        self.jobs[job] = proc
        assert proc.stdout is not None and proc.stderr is not None
        err_task = asyncio.ensure_future(proc.stderr.read())
        try:
            while chunk := await proc.stdout.read(16384):
                self.send(b"O", job, chunk)
            code = await proc.wait()
            err = await err_task
        finally:
            self.jobs.pop(job, None)
        self.send(b"D", job, json.dumps({"code": code,
                                          "stderr": err[-500:].decode(errors="replace")}).encode())

    def cancel(self, job: int) -> None:
        proc = self.jobs.get(job)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    server = _Server(None)
    while True:
        try:
            head = await reader.readexactly(HEADER.size)
            op, job, size = HEADER.unpack(head)
            payload = await reader.readexactly(size) if size else b""
        except asyncio.IncompleteReadError:
            break
        if op == b"R":
            task = asyncio.ensure_future(server.run(job, json.loads(payload)))
            server.tasks.add(task)
            task.add_done_callback(server.tasks.discard)
        elif op == b"C":
            server.cancel(job)
    for job in list(server.jobs):
        server.cancel(job)


if __name__ == "__main__":
    asyncio.run(main())
