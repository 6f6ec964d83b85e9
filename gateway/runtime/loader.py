"""Scenario loading: Python source compiled once per session, run in one namespace.

Scenarios are trusted code (only a role allowed to upload code may add one); they
run with the gateway's rights. Untrusted tenants use flows instead.
"""

from __future__ import annotations

from types import CodeType

from gateway.errors import ScenarioError

#: Largest scenario source accepted, in bytes of UTF-8 (256 KiB; VoxEngine limits a
#: scenario to 256*1024 characters).
MAX_SCENARIO_BYTES = 256 * 1024


def compile_scenario(source: str, name: str) -> CodeType:
    """Compile scenario ``source``; the filename in tracebacks is ``<scenario NAME>``.

    Raises:
        ScenarioError: the source is too large or does not compile; the message
            names the line, e.g. ``"line 3: invalid syntax"``.
    """
    size = len(source.encode("utf-8"))
    if size > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"scenario {name!r} is {size} bytes, the limit is "
                            f"{MAX_SCENARIO_BYTES} bytes (256 KiB)")
    try:
        return compile(source, f"<scenario {name}>", "exec")
    except SyntaxError as exc:
        raise ScenarioError(f"line {exc.lineno}: {exc.msg}") from exc
    except ValueError as exc:  # e.g. null bytes
        raise ScenarioError(str(exc)) from exc
