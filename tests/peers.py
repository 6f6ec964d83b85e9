"""Helpers for tests that use real peers (sipp, baresip, espeak-ng, sox).

Under ``CI=true`` a missing peer fails the test; elsewhere it skips it.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import NoReturn

import pytest


def peer_unavailable(msg: str) -> NoReturn:
    """A real peer (program, recordings, database, capture) is missing: fail the test
    under ``CI=true``, skip it elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def require_binary(name: str) -> str:
    """Path of executable ``name``; fail (CI) or skip (dev box) when it is missing."""
    path = shutil.which(name)
    if path:
        return path
    peer_unavailable(f"real peer {name!r} is not installed (apt: see .ci/run)")


def require_files(pattern: str, package: str) -> list[str]:
    """Files matching ``pattern``; fail (CI) or skip (dev box) when there are none."""
    import glob

    found = sorted(glob.glob(pattern))
    if found:
        return found
    peer_unavailable(f"{pattern} not found (apt package {package})")


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``host`` (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")
