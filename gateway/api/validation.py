"""Checks applied to what tenants upload: scenario source and rule patterns.

A scenario must compile as Python (``compile(script, scenario_name, "exec")``) before
it is stored; a rule pattern must be a valid Python regular expression (matched with
``re.fullmatch`` against the called number, as Voximplant's rule patterns are).
"""

from __future__ import annotations

import re

from gateway.api.errors import SCENARIO_DOES_NOT_COMPILE, PlatformError, invalid_argument
from gateway.runtime.loader import MAX_SCENARIO_BYTES


def check_scenario_compiles(script: str, scenario_name: str) -> None:
    """Raise error 101 if ``script`` is over 256 KiB (UTF-8; VoxEngine's limit), and
    error 9004 naming the line if it is not valid Python.

    Example msg: ``Scenario does not compile: line 3: invalid syntax``.
    """
    size = len(script.encode("utf-8"))
    if size > MAX_SCENARIO_BYTES:
        raise invalid_argument("scenario_script", f"is {size} bytes; the limit is "
                                                  f"{MAX_SCENARIO_BYTES} bytes (256 KiB)")
    try:
        compile(script, scenario_name, "exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        raise PlatformError(SCENARIO_DOES_NOT_COMPILE,
                            f"Scenario does not compile: {where}{exc.msg}") from exc
    except ValueError as exc:  # e.g. source with NUL bytes
        raise PlatformError(SCENARIO_DOES_NOT_COMPILE,
                            f"Scenario does not compile: {exc}") from exc


def check_regex(pattern: str, param: str) -> None:
    """Raise error 101 naming ``param`` if ``pattern`` is not a valid regular expression."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise invalid_argument(param, f"is not a valid regular expression: {exc}") from exc
