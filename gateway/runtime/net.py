"""``Net`` in scenario globals: outbound HTTP from scenarios (VoxEngine's ``Net`` module).

``Net.http_request_async(url, method=..., headers=..., post_data=..., timeout=...)`` is
VoxEngine's ``Net.httpRequestAsync`` in snake_case. It starts the request at once and
returns an awaitable (an ``asyncio`` future) that resolves to an
:class:`HttpRequestResult` with ``code``, ``headers``, ``text`` and ``error`` (also
``raw_headers`` and ``data``). It never raises for a failed request: a refused request,
a timeout or a network failure all give a result whose ``error`` says what happened
(``code`` is 0 when there was no HTTP response).

Limits per session, VoxEngine's ("Limits and restrictions"):

* at most :data:`MAX_RUNNING` (3) requests run at once; later ones wait in a FIFO queue;
* at most :data:`MAX_IN_FLIGHT` (35) requests are in flight, running and queued
  together; one more is refused with ``error`` = :data:`LIMIT_ERROR`;
* when the session ends, running requests are waited for (each within its own timeout)
  before ``AppEvents.Terminating`` fires and queued ones are dropped (their result has
  an error); after ``Terminating`` exactly one more request may be made (to tell an
  external system that the session is over) and it completes before
  ``AppEvents.Terminated``; after ``Terminated`` calling ``Net`` raises.

Every session shares one ``httpx.AsyncClient`` (:class:`SharedHttpClient`, one per
gateway); it is built on a worker thread (loading the TLS trust store takes tens of
milliseconds) and requests never block the event loop. Response bodies are capped at
:data:`MAX_RESPONSE_BYTES`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from gateway.runtime.session import Session

log = logging.getLogger(__name__)

#: Requests one session may run at once (VoxEngine: 3 active HTTP requests).
MAX_RUNNING = 3
#: Requests one session may have in flight, running plus queued (VoxEngine: 35).
MAX_IN_FLIGHT = 35
#: ``error`` of a request refused over :data:`MAX_IN_FLIGHT` (VoxEngine's wording).
LIMIT_ERROR = "Exceeded the HTTP connection count limit!"
#: Default request timeout, seconds (whole request: connect, send, wait, read).
DEFAULT_TIMEOUT = 90.0
#: Longest response body kept, bytes; a longer one gives an error result.
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
#: Most redirects followed.
MAX_REDIRECTS = 5


@dataclass(slots=True)
class HttpRequestResult:
    """What ``Net.http_request_async`` resolves to (VoxEngine's ``HttpRequestResult``).

    Attributes:
        code: HTTP status code; 0 when no response arrived (see ``error``).
        headers: response headers, lower-case names; repeated headers joined with ", ".
        raw_headers: response headers as (name, value) pairs, in order.
        text: the body decoded as text (the response charset, else UTF-8).
        data: the body as bytes.
        error: why the request failed, or None. An HTTP error status is not an error.
    """

    code: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    raw_headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    data: bytes = b""
    error: str | None = None

    def __getitem__(self, item: str) -> Any:
        return getattr(self, item)


class SharedHttpClient:
    """The gateway's one ``httpx.AsyncClient``, built lazily off the event loop."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._building: asyncio.Future[httpx.AsyncClient] | None = None

    async def get(self) -> httpx.AsyncClient:
        """The client (built on a worker thread on first use)."""
        if self._client is not None:
            return self._client
        if self._building is None:
            self._building = asyncio.ensure_future(asyncio.to_thread(
                httpx.AsyncClient, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                timeout=None, limits=httpx.Limits(max_connections=200,
                                                  max_keepalive_connections=50)))
        client = await asyncio.shield(self._building)
        self._client = client
        return client

    async def aclose(self) -> None:
        """Close the client's connections (the gateway is stopping)."""
        client, self._client = self._client, None
        if client is None and self._building is not None and self._building.done() \
                and not self._building.cancelled() and self._building.exception() is None:
            client = self._building.result()
        self._building = None
        if client is not None:
            await client.aclose()


@dataclass(slots=True, eq=False)
class _Request:
    method: str
    url: str
    headers: list[tuple[str, str]]
    content: bytes | None
    params: dict[str, str] | None
    timeout: float
    started: bool = False
    dropped: bool = False


class SessionNet:
    """``Net`` of one session.

    Args:
        session: the owning session.
        client: the gateway's shared HTTP client.
        max_running: requests run at once (3).
        max_in_flight: requests running plus queued (35).
    """

    def __init__(self, session: Session, client: SharedHttpClient, *,
                 max_running: int = MAX_RUNNING, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._session = session
        self._client = client
        self._max_running = max_running
        self._max_in_flight = max_in_flight
        self._running = 0
        self._queue: list[tuple[_Request, asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Task[HttpRequestResult]] = set()
        self._after_terminating = 0

    @property
    def in_flight(self) -> int:
        """Requests running or queued now."""
        return len(self._tasks)

    @property
    def running(self) -> int:
        """Requests running now (at most 3)."""
        return self._running

    def http_request_async(self, url: str, method: str = "GET", *,
                           headers: Mapping[str, str] | Sequence[str] | None = None,
                           post_data: str | bytes | None = None,
                           timeout: float = DEFAULT_TIMEOUT,
                           params: Mapping[str, Any] | None = None,
                           ) -> asyncio.Future[HttpRequestResult]:
        """Start an HTTP request; returns an awaitable resolving to :class:`HttpRequestResult`.

        Args:
            url: ``http://`` or ``https://`` URL.
            method: GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS.
            headers: ``{"Name": "value"}``, or VoxEngine's list of ``"Name: value"`` strings.
            post_data: request body (str is sent as UTF-8).
            timeout: seconds for the whole request (90).
            params: query parameters added to the URL.

        Raises:
            SessionEndedError: the session has ended (after ``AppEvents.Terminated``).
        """
        session = self._session
        session.check_alive("Net.http_request_async")
        loop = asyncio.get_running_loop()
        refused = self._refusal()
        if refused is None:
            try:
                req = self._build(url, method, headers, post_data, timeout, params)
            except (TypeError, ValueError) as exc:
                refused = str(exc)
        if refused is not None:
            session.log_line(f"Net.http_request_async {method} {url}: refused: {refused}",
                             logging.WARNING)
            fut: asyncio.Future[HttpRequestResult] = loop.create_future()
            fut.set_result(HttpRequestResult(error=refused))
            return fut
        if session.phase == "terminating":
            self._after_terminating += 1
        task = session.run_in_context(loop.create_task, self._run(req))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _refusal(self) -> str | None:
        phase = self._session.phase
        if phase == "ending":
            return ("the session is ending: pending requests are finishing; one more "
                    "request may be made once AppEvents.Terminating has fired")
        if phase == "terminating" and self._after_terminating >= 1:
            return ("only one HTTP request may be made after AppEvents.Terminating "
                    "(VoxEngine's rule)")
        if len(self._tasks) >= self._max_in_flight:
            return (f"{LIMIT_ERROR} (at most {self._max_in_flight} requests in flight per "
                    f"session, {self._max_running} running at once)")
        return None

    @staticmethod
    def _build(url: Any, method: Any, headers: Any, post_data: Any, timeout: Any,
               params: Any) -> _Request:
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        if not isinstance(method, str) or not method.isalpha():
            raise ValueError(f"invalid method {method!r}")
        pairs: list[tuple[str, str]] = []
        if isinstance(headers, Mapping):
            pairs = [(str(k), str(v)) for k, v in headers.items()]
        elif headers is not None:
            if isinstance(headers, str | bytes):
                raise TypeError("headers must be a dict or a list of 'Name: value' strings")
            for line in headers:
                name, sep, value = str(line).partition(":")
                if not sep or not name.strip():
                    raise ValueError(f"header {line!r} is not 'Name: value'")
                pairs.append((name.strip(), value.strip()))
        content: bytes | None
        if post_data is None:
            content = None
        elif isinstance(post_data, bytes | bytearray):
            content = bytes(post_data)
        elif isinstance(post_data, str):
            content = post_data.encode("utf-8")
        else:
            raise TypeError("post_data must be str or bytes")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        query = {str(k): str(v) for k, v in params.items()} if params else None
        return _Request(method.upper(), url, pairs, content, query, float(timeout))

    async def _run(self, req: _Request) -> HttpRequestResult:
        await self._acquire(req)
        try:
            if req.dropped:
                return HttpRequestResult(error="dropped: the session ended before the "
                                         "request could start")
            req.started = True
            return await self._perform(req)
        finally:
            self._release()

    async def _acquire(self, req: _Request) -> None:
        if self._running < self._max_running and not self._queue:
            self._running += 1
            return
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((req, gate))
        try:
            await gate  # _release hands its slot over (running stays counted)
        except asyncio.CancelledError:
            if gate.done() and not gate.cancelled():
                self._release()  # the slot was ours already
            else:
                self._queue[:] = [(r, g) for r, g in self._queue if g is not gate]
            raise

    def _release(self) -> None:
        while self._queue:
            _req, gate = self._queue.pop(0)
            if not gate.done():
                gate.set_result(None)
                return
        self._running -= 1

    async def _perform(self, req: _Request) -> HttpRequestResult:
        what = f"{req.method} {req.url}"
        try:
            client = await self._client.get()
            async with asyncio.timeout(req.timeout):
                async with client.stream(req.method, req.url, headers=req.headers,
                                         content=req.content, params=req.params) as resp:
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            raise _TooLarge
                    data = bytes(body)
        except TimeoutError:
            return self._failed(what, f"timed out after {req.timeout:g} s")
        except _TooLarge:
            return self._failed(what, f"response larger than {MAX_RESPONSE_BYTES} bytes")
        except httpx.TooManyRedirects:
            return self._failed(what, f"more than {MAX_REDIRECTS} redirects")
        except httpx.HTTPError as exc:
            return self._failed(what, f"{type(exc).__name__}: {exc or 'request failed'}")
        except (httpx.InvalidURL, httpx.StreamError, OSError, ValueError) as exc:
            return self._failed(what, f"{type(exc).__name__}: {exc}")
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw]
        merged: dict[str, str] = {}
        for k, v in raw:
            key = k.lower()
            merged[key] = f"{merged[key]}, {v}" if key in merged else v
        try:
            text = data.decode(resp.encoding or "utf-8", "replace")
        except LookupError:  # an unknown charset
            text = data.decode("utf-8", "replace")
        self._session.log_line(f"Net.http_request_async {what}: {resp.status_code}",
                               logging.DEBUG)
        return HttpRequestResult(code=resp.status_code, headers=merged, raw_headers=raw,
                                 text=text, data=data)

    def _failed(self, what: str, error: str) -> HttpRequestResult:
        self._session.log_line(f"Net.http_request_async {what}: {error}", logging.WARNING)
        return HttpRequestResult(error=error)

    # -- session end ------------------------------------------------------------------
    async def before_terminating(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Drop queued requests and wait (up to ``timeout`` s) for running ones."""
        for req, _gate in self._queue:
            req.dropped = True
        await self.wait_idle(timeout)

    async def wait_idle(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait (up to ``timeout`` s) until no request is in flight."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)


class _TooLarge(Exception):
    pass
