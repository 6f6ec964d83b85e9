"""Shared helpers for SIP integration tests: a recording listener, an adapter factory
and a runner for the real ``sipp`` binary (temp dir, free ports, -nostdin, killed at end)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.adapters.sip.adapter import SipAdapter
from gateway.adapters.sip.leg import SipLeg
from gateway.adapters.sip.rtp_session import PortAllocator
from gateway.adapters.sip.transaction import TimerConfig
from gateway.media.format import AudioFrame
from tests.peers import free_port, free_udp_port, require_binary

SCENARIOS = Path(__file__).resolve().parents[1] / "e2e" / "sipp"


class Recorder:
    """A LegListener that records every event and lets tests await them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.audio_frames = 0
        self.audio_events: list[int] = []
        self._changed = asyncio.Event()

    def _add(self, name: str, *args: Any) -> None:
        self.events.append((name, args))
        self._changed.set()

    def leg_progress(self, code: int, reason: str, headers: dict[str, str], early: bool) -> None:
        self._add("progress", code, reason, headers, early)

    def leg_connected(self, headers: dict[str, str]) -> None:
        self._add("connected", headers)

    def leg_failed(self, code: int, reason: str, headers: dict[str, str]) -> None:
        self._add("failed", code, reason, headers)

    def leg_disconnected(self, headers: dict[str, str], by_remote: bool) -> None:
        self._add("disconnected", headers, by_remote)

    def leg_tone(self, digit: str, tone_type: int) -> None:
        self._add("tone", digit, tone_type)

    def leg_audio(self, frame: AudioFrame) -> None:
        self.audio_frames += 1
        self.audio_events.append(len(self.events))  # how many events preceded this frame
        self._changed.set()

    def leg_message(self, text: str, headers: dict[str, str]) -> None:
        self._add("message", text, headers)

    def leg_info(self, mime_type: str, body: str, headers: dict[str, str]) -> None:
        self._add("info", mime_type, body, headers)

    def leg_transfer_result(self, success: bool, code: int, reason: str) -> None:
        self._add("transfer", success, code, reason)

    async def wait_audio(self, frames: int, timeout: float = 15.0) -> None:
        """Wait until ``frames`` audio frames have arrived."""
        async def _wait() -> None:
            while self.audio_frames < frames:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"only {self.audio_frames} audio frames within {timeout}s; "
                                 f"events {self.names()}") from None

    def names(self) -> list[str]:
        return [n for n, _ in self.events]

    def get(self, name: str) -> tuple[Any, ...]:
        for n, args in self.events:
            if n == name:
                return args
        raise AssertionError(f"no {name} event in {self.names()}")

    async def wait_for(self, name: str, timeout: float = 15.0) -> tuple[Any, ...]:
        async def _wait() -> tuple[Any, ...]:
            while True:
                for n, args in self.events:
                    if n == name:
                        return args
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {name} event within {timeout}s; got {self.names()}") from None


def rtp_ports() -> PortAllocator:
    base = random.randrange(30000, 39000, 2)
    return PortAllocator(base, base + 98)


@asynccontextmanager
async def running_adapter(
    on_incoming: Callable[[SipLeg], Awaitable[bool]] | None = None, **kw: Any,
) -> AsyncIterator[SipAdapter]:
    async def refuse(leg: SipLeg) -> bool:
        return False

    adapter = SipAdapter(host="127.0.0.1", port=free_port(), advertised_host="127.0.0.1",
                         ports=rtp_ports(), on_incoming=on_incoming or refuse,
                         timer_config=kw.pop("timer_config", TimerConfig(t1=0.1)), **kw)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


class Sipp:
    """One sipp process in its own temp dir."""

    def __init__(self, proc: asyncio.subprocess.Process, cwd: Path, port: int) -> None:
        self.proc = proc
        self.cwd = cwd
        self.port = port

    async def wait(self, timeout: float = 30.0) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            raise AssertionError(f"sipp did not finish within {timeout}s\n{self.logs()}") from None

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()

    def logs(self) -> str:
        out = []
        for f in sorted(self.cwd.glob("*.log")):
            out.append(f"--- {f.name}\n{f.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)


@asynccontextmanager
async def sipp(tmp_path: Path, *args: str, remote: str | None = None,
               ) -> AsyncIterator[Sipp]:
    """Start ``sipp`` with ``args`` (+ local port, -nostdin, traces); kill it at the end."""
    exe = require_binary("sipp")
    port = free_port()
    media = free_udp_port() & ~1
    cwd = tmp_path / f"sipp{port}"
    cwd.mkdir()
    os.symlink("/usr/share/sip-tester", cwd / "pcap")
    cmd = [exe, *([remote] if remote else []), *args, "-i", "127.0.0.1", "-p", str(port),
           "-mi", "127.0.0.1", "-mp", str(media), "-m", "1", "-nostdin",
           "-timeout", "25s", "-timeout_error", "-trace_msg", "-trace_err"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    runner = Sipp(proc, cwd, port)
    try:
        yield runner
    finally:
        runner.kill()
        await proc.wait()


async def wait_sipp_listening(port: int) -> None:
    """Give a UAS sipp a moment to bind (it binds at start; poll the UDP port)."""
    import socket

    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"sipp never bound port {port}")
