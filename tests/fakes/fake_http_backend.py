"""A local HTTP/1.1 server standing in for the web services scenarios call with ``Net``.

Plain asyncio streams, one request per connection (``Connection: close``), bodies by
``Content-Length`` only. Paths:

* ``/echo``: 200 with JSON ``{"method", "path", "query", "headers", "body"}`` and a
  ``Set-Cookie`` header twice;
* ``/status/<code>``: that status, body ``status <code>``;
* ``/hold``: waits until the test calls :meth:`FakeHttpBackend.release` (counts how many
  requests are held at once: :attr:`max_concurrent`);
* ``/slow/<ms>``: answers after that many milliseconds;
* ``/big/<bytes>``: a body of that many bytes;
* ``/latin1``: text in ISO-8859-1 with that charset declared.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl, urlsplit


class FakeHttpBackend:
    """``async with FakeHttpBackend() as web: web.url("/echo")``."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.port = 0
        self.requests: list[dict] = []
        self.held = 0
        self.max_concurrent = 0
        self._release = asyncio.Event()
        self._changed = asyncio.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def release(self) -> None:
        """Let every held (and future) ``/hold`` request answer."""
        self._release.set()

    async def wait_held(self, n: int, timeout: float = 5.0) -> None:
        """Wait until ``n`` requests are held at once."""
        async with asyncio.timeout(timeout):
            while self.held < n:
                self._changed.clear()
                await self._changed.wait()

    async def __aenter__(self) -> FakeHttpBackend:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            parts = urlsplit(target)
            req = {"method": method, "path": parts.path, "query": dict(parse_qsl(parts.query)),
                   "headers": headers, "body": body.decode("utf-8", "replace")}
            self.requests.append(req)
            status, extra, payload = await self._answer(req)
            out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(payload)}",
                   "Connection: close", *extra]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, req: dict) -> tuple[int, list[str], bytes]:
        path = req["path"]
        if path == "/echo":
            return 200, ["Content-Type: application/json", "Set-Cookie: a=1",
                         "Set-Cookie: b=2"], json.dumps(req).encode()
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            return code, [], f"status {code}".encode()
        if path == "/hold":
            self.held += 1
            self.max_concurrent = max(self.max_concurrent, self.held)
            self._changed.set()
            try:
                await self._release.wait()
            finally:
                self.held -= 1
            return 200, [], b"released"
        if path.startswith("/slow/"):
            await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
            return 200, [], b"slow"
        if path.startswith("/big/"):
            return 200, [], b"x" * int(path.rsplit("/", 1)[1])
        if path == "/latin1":
            return 200, ["Content-Type: text/plain; charset=iso-8859-1"], "café".encode("latin-1")
        return 404, [], b"not found"
