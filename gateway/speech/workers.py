"""A shared pool of PocketSphinx worker processes (one decoder each).

CPU-heavy recognition never runs on the event loop: PocketSphinx holds the GIL
while decoding, so each decoder lives in its own process
(:mod:`gateway.speech.sphinx_worker`) and is talked to over pipes with asyncio.
The pool is bounded (``size`` processes, default one per core): a call holds a
decoder only while its caller is speaking (one utterance), and a call that finds
every decoder busy waits for one with its audio buffered. So N calls share
``size`` model copies instead of loading one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from gateway.speech.procs import stop_child
from gateway.speech.sphinx_worker import HEADER

log = logging.getLogger(__name__)

#: Seconds a worker may take to load its model before it counts as failed.
LOAD_TIMEOUT_S = 60.0
#: Seconds a worker may take to answer a request (final pass of a long utterance).
ANSWER_TIMEOUT_S = 30.0


class SpeechWorkerError(RuntimeError):
    """A worker process failed: it could not start, died, or reported an error."""


class SphinxWorker:
    """One PocketSphinx worker process and its framed pipe protocol.

    Args:
        options: PocketSphinx config values (``{"beam": "1e-48"}``), passed as
            ``--opt name=value``.
    """

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = {k: str(v) for k, v in (options or {}).items()}
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: deque[tuple[bytes, asyncio.Future[dict[str, Any]]]] = deque()
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self.load_ms: float | None = None

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Spawn the process and wait for its model to load.

        Raises:
            SpeechWorkerError: the process could not start or load its model.
        """
        args = [sys.executable, "-m", "gateway.speech.sphinx_worker"]
        for name, value in self.options.items():
            args += ["--opt", f"{name}={value}"]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=env)
        except OSError as exc:
            raise SpeechWorkerError(f"could not start the PocketSphinx worker: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._reader = loop.create_task(self._read_loop())
        try:
            info = await asyncio.wait_for(asyncio.shield(self._ready), LOAD_TIMEOUT_S)
        except TimeoutError:
            await self.close()
            raise SpeechWorkerError("the PocketSphinx worker did not load its model "
                                    f"within {LOAD_TIMEOUT_S:g} s") from None
        except SpeechWorkerError:
            await self.close()
            raise
        except asyncio.CancelledError:  # the gateway stopped while the model loaded
            if self._proc is not None and self._proc.returncode is None:
                self._proc.kill()
            raise
        self.load_ms = info.get("load_ms")

    async def _read_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        error: BaseException | None = None
        try:
            while True:
                head = await out.readexactly(HEADER.size)
                op, size = HEADER.unpack(head)
                payload = json.loads(await out.readexactly(size)) if size else {}
                self._deliver(op, payload)
        except asyncio.IncompleteReadError:
            error = SpeechWorkerError(f"the PocketSphinx worker exited "
                                      f"(code {await self._returncode()})")
        except asyncio.CancelledError:
            error = SpeechWorkerError("the PocketSphinx worker was stopped")
            raise
        except Exception as exc:  # garbage on the pipe
            error = SpeechWorkerError(f"the PocketSphinx worker sent garbage: {exc!r}")
        finally:
            self._fail_all(error or SpeechWorkerError("the PocketSphinx worker stopped"))

    async def _returncode(self) -> int | None:
        if self._proc is None:
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self._proc.wait(), 1.0)
        return self._proc.returncode

    def _deliver(self, op: bytes, payload: dict[str, Any]) -> None:
        if self._ready is not None and not self._ready.done():
            if op == b"K":
                self._ready.set_result(payload)
            else:
                self._ready.set_exception(SpeechWorkerError(str(payload.get("error", payload))))
            return
        if not self._waiters:
            log.warning("PocketSphinx worker: unexpected message %r", op)
            return
        _want, fut = self._waiters.popleft()
        if fut.done():
            return
        if op == b"X":
            fut.set_exception(SpeechWorkerError(str(payload.get("error", "worker error"))))
        else:
            fut.set_result(payload)

    def _fail_all(self, exc: BaseException) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(exc)
        while self._waiters:
            _want, fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def _send(self, op: bytes, payload: bytes = b"") -> None:
        if not self.alive or self._proc is None or self._proc.stdin is None:
            raise SpeechWorkerError("the PocketSphinx worker is not running")
        self._proc.stdin.write(HEADER.pack(op, len(payload)) + payload)

    async def _request(self, op: bytes, answer: bytes) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # the caller may be gone when the worker dies (session ended): no "never retrieved"
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._send(op)
        self._waiters.append((answer, fut))
        assert self._proc is not None and self._proc.stdin is not None
        await self._proc.stdin.drain()
        try:
            return await asyncio.wait_for(fut, ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise SpeechWorkerError(
                f"the PocketSphinx worker did not answer within {ANSWER_TIMEOUT_S:g} s") from None

    # -- the utterance API -----------------------------------------------------
    def start_utterance(self) -> None:
        """Begin an utterance (the previous one, if any, is discarded)."""
        self._send(b"S")

    def feed(self, pcm: bytes) -> None:
        """Queue PCM16 LE mono at the model's rate (16000 Hz) for decoding; never blocks."""
        if pcm:
            self._send(b"F", pcm)

    async def partial(self) -> str:
        """The best hypothesis so far in the current utterance."""
        return str((await self._request(b"P", b"I")).get("text", ""))

    async def end_utterance(self) -> dict[str, Any]:
        """End the utterance; returns ``{"text", "confidence", "decode_ms"}``.

        Raises:
            SpeechWorkerError: the worker died or reported an error.
        """
        return await self._request(b"E", b"R")

    async def close(self) -> None:
        """Stop the process (closing stdin ends it; killed after 2 s)."""
        proc, self._proc = self._proc, None
        await stop_child(proc, self._reader)


class SphinxPool:
    """At most ``size`` PocketSphinx worker processes shared by every call.

    Workers start lazily on first use and are replaced when one dies.

    Args:
        size: most decoders (processes); default ``os.cpu_count()``.
        options: PocketSphinx config values for every worker.
    """

    def __init__(self, size: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.size = max(1, int(size or os.cpu_count() or 1))
        self.options = dict(options or {})
        self._idle: list[SphinxWorker] = []
        self._started = 0
        self._cond: asyncio.Condition | None = None
        self._closed = False
        #: How many acquisitions had to wait for a busy pool (a load figure).
        self.waits = 0

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[SphinxWorker]:
        """Hold one worker for the duration of the block (one utterance).

        Raises:
            SpeechWorkerError: the pool is closed or a worker could not start.
        """
        worker = await self._take()
        try:
            yield worker
        finally:
            await self._give_back(worker)

    async def _take(self) -> SphinxWorker:
        cond = self._condition()
        async with cond:
            waited = False
            while True:
                if self._closed:
                    raise SpeechWorkerError("the speech worker pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    self._started -= 1
                if self._started < self.size:
                    self._started += 1
                    break
                if not waited:
                    self.waits += 1
                    waited = True
                await cond.wait()
        worker = SphinxWorker(self.options)
        try:
            await worker.start()
        except BaseException:
            async with cond:
                self._started -= 1
                cond.notify()
            raise
        return worker

    async def _give_back(self, worker: SphinxWorker) -> None:
        cond = self._condition()
        async with cond:
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                self._started -= 1
                asyncio.get_running_loop().create_task(worker.close())
            cond.notify()

    async def warm_up(self, count: int = 1) -> None:
        """Start ``count`` workers now (so the first caller does not wait for a model load)."""
        held = [await self._take() for _ in range(min(count, self.size))]
        for worker in held:
            await self._give_back(worker)

    async def close(self) -> None:
        """Stop every idle worker; busy ones stop when given back."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(w.close() for w in idle), return_exceptions=True)
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()
