"""Small shared helpers for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` every 50 ms; fail with ``what`` after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def session_id_of(access_url: str) -> str:
    """Session id inside a media_session_access_url (``.../sessions/<id>/<secret>``)."""
    return access_url.split("/sessions/")[1].split("/")[0]
