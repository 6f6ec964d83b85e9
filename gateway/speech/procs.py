"""Stopping the helper processes the speech layer talks to over pipes."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_child(proc: asyncio.subprocess.Process | None,
                     reader: asyncio.Task[None] | None, grace_s: float = 2.0) -> None:
    """Close ``proc``'s stdin (its cue to exit), kill it after ``grace_s`` seconds, and
    cancel the task reading its stdout. Either may be None."""
    if proc is not None and proc.returncode is None:
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    if reader is not None:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
