"""Loopback ASGI servers for the fakes: uvicorn in the test's event loop on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Any
Send = Any


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the test runner keeps Ctrl-C)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LoopbackASGIServer:
    """Runs ``self._app`` (ASGI) on uvicorn on a free 127.0.0.1 port in this loop.

    Subclasses implement ``_app``; ``ws`` picks uvicorn's WebSocket implementation
    ("none" for plain HTTP fakes); ``_stopping`` releases what is held before the
    server stops; ``_notify`` wakes ``_changed`` waiters.
    """

    #: uvicorn's ``ws`` option.
    ws = "none"

    def __init__(self) -> None:
        self.port = 0
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> Any:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app, lifespan="off", log_level="warning", http="h11",
                                ws=self.ws, interface="asgi3", access_log=False)
        self._server = _Server(config)
        self._task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(10):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.005)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            try:
                async with asyncio.timeout(10):
                    await self._task
            finally:
                self._server = None
                self._task = None

    def _stopping(self) -> None:
        """Hook: release whatever is held before the server stops."""

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, cond: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait until ``cond()`` holds (re-checked after every request and stream step)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(cond)

    @staticmethod
    async def send_json(send: Send, status: int, body: Mapping[str, Any],
                        headers: list[tuple[bytes, bytes]] | None = None) -> None:
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
        await send({"type": "http.response.body", "body": payload, "more_body": False})


async def watch_disconnect(receive: Receive, event: asyncio.Event) -> None:
    """Set ``event`` when the client goes away (run after the body was read)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    event.set()


async def pause(disconnected: asyncio.Event, hold: asyncio.Event) -> bool:
    """Wait for ``hold``; False when the client went away first."""
    waiters = [asyncio.ensure_future(disconnected.wait()), asyncio.ensure_future(hold.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return not disconnected.is_set()
