"""Run short-lived commands through a small spawner process (see
:mod:`gateway.speech.spawn_worker` for why: forking the gateway itself stalls its
event loop for 10-35 ms per child with uvloop).

One :class:`Spawner` per event loop (:func:`shared_spawner`); it starts lazily,
multiplexes any number of jobs over one pipe, and is restarted when it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import weakref
from collections.abc import AsyncIterator

from gateway.speech.procs import stop_child
from gateway.speech.spawn_worker import HEADER

log = logging.getLogger(__name__)


class SpawnError(RuntimeError):
    """The command could not run, or the spawner process failed."""


class JobFailed(SpawnError):
    """The command exited with a non-zero status.

    Attributes:
        code: exit status; stderr: the end of its standard error.
    """

    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(f"exited with {code}: {stderr.strip()[:200]}")
        self.code = code
        self.stderr = stderr


class _Job:
    __slots__ = ("done", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.done = False


class Spawner:
    """The parent side of the spawner process."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._jobs: dict[int, _Job] = {}
        self._next = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the spawner process now (it otherwise starts on the first job)."""
        await self._ensure()

    async def _ensure(self) -> asyncio.subprocess.Process:
        async with self._lock:
            if self._proc is None or self._proc.returncode is not None:
                try:
                    self._proc = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "gateway.speech.spawn_worker",
                        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.DEVNULL)
                except OSError as exc:
                    raise SpawnError(f"could not start the spawner process: {exc}") from exc
                self._reader = asyncio.get_running_loop().create_task(self._read(self._proc))
            return self._proc

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                op, job_id, size = HEADER.unpack(await proc.stdout.readexactly(HEADER.size))
                payload = await proc.stdout.readexactly(size) if size else b""
                job = self._jobs.get(job_id)
                if job is None:
                    continue
                if op == b"O":
                    job.queue.put_nowait(payload)
                elif op == b"D":
                    info = json.loads(payload)
                    code = int(info.get("code", -1))
                    job.queue.put_nowait(None if code == 0 else
                                         JobFailed(code, str(info.get("stderr", ""))))
                elif op == b"E":
                    job.queue.put_nowait(SpawnError(str(json.loads(payload).get("error"))))
        except (asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception as exc:  # garbage on the pipe
            log.warning("spawner: bad message: %r", exc)
        finally:
            for job in self._jobs.values():
                job.queue.put_nowait(SpawnError("the spawner process exited"))
            with contextlib.suppress(ProcessLookupError):
                if proc.returncode is None:
                    proc.kill()

    def _send(self, proc: asyncio.subprocess.Process, op: bytes, job: int,
              payload: bytes = b"") -> None:
        if proc.stdin is None or proc.returncode is not None:
            raise SpawnError("the spawner process is not running")
        proc.stdin.write(HEADER.pack(op, job, len(payload)) + payload)

    async def run(self, argv: list[str]) -> AsyncIterator[bytes]:
        """Run ``argv`` and yield its standard output as it arrives.

        Closing the iterator early kills the command.

        Raises:
            JobFailed: the command exited with a non-zero status.
            SpawnError: it could not start, or the spawner died.
        """
        proc = await self._ensure()
        self._next = (self._next + 1) & 0xFFFFFFFF
        job_id = self._next
        job = self._jobs[job_id] = _Job()
        try:
            self._send(proc, b"R", job_id, json.dumps(list(argv)).encode())
            while True:
                item = await job.queue.get()
                if item is None:
                    job.done = True
                    return
                if isinstance(item, BaseException):
                    job.done = True
                    raise item
                yield item
        finally:
            self._jobs.pop(job_id, None)
            if not job.done:
                with contextlib.suppress(SpawnError):
                    self._send(proc, b"C", job_id)

    async def close(self) -> None:
        """Stop the spawner process (its running commands are killed)."""
        proc, self._proc = self._proc, None
        await stop_child(proc, self._reader)


_spawners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Spawner] = (
    weakref.WeakKeyDictionary())


def shared_spawner() -> Spawner:
    """The running loop's spawner."""
    loop = asyncio.get_running_loop()
    spawner = _spawners.get(loop)
    if spawner is None:
        spawner = _spawners[loop] = Spawner()
    return spawner


async def close_spawner() -> None:
    """Stop the running loop's spawner, if one started."""
    spawner = _spawners.pop(asyncio.get_running_loop(), None)
    if spawner is not None:
        await spawner.close()
