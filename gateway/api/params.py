"""Parameters of a platform_api request, read the way Voximplant's HTTP API takes them.

Voximplant accepts parameters in the query string and in a form-encoded body (the
official clients post ``cmd=...&account_id=...``); this gateway also accepts a JSON
object body. Lists are ``;`` (Voximplant) or ``,`` separated; booleans are
``true``/``false`` (or ``1``/``0``); dates are ``YYYY-MM-DD HH:MM:SS`` in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from gateway.api.errors import (
    INVALID_ARGUMENTS,
    INVALID_DATE_FORMAT,
    PlatformError,
    invalid_argument,
    missing_argument,
)

#: Voximplant's date format (always UTC).
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Integers are ids and counts: they must fit a 32-bit signed database column.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def format_date(value: datetime | None) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, or ``None``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(DATE_FORMAT)


def _json_value_to_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool)
                                       for v in value):
        return ";".join(str(v) for v in value)
    return json.dumps(value, separators=(",", ":"))


async def read_params(request: Request) -> Params:
    """Query string merged with the body (form or JSON object); the body wins.

    Raises:
        PlatformError: 101 when the body is not valid JSON / form data.
    """
    values: dict[str, str] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body.strip():
        return Params(values)
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PlatformError(INVALID_ARGUMENTS,
                                f"Invalid arguments: the body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PlatformError(INVALID_ARGUMENTS,
                                "Invalid arguments: the JSON body must be an object")
        for key, value in data.items():
            converted = _json_value_to_str(value)
            if converted is not None:
                values[str(key)] = converted
        return Params(values)
    if content_type in ("", "text/plain"):
        try:
            values.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise PlatformError(INVALID_ARGUMENTS,
                                "Invalid arguments: the body is not UTF-8 form data") from exc
        return Params(values)
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception as exc:  # python-multipart and Starlette raise several types
            detail = getattr(exc, "detail", None) or exc
            raise PlatformError(INVALID_ARGUMENTS,
                                f"Invalid arguments: the body is not valid form data: {detail}"
                                ) from exc
        for key, value in form.multi_items():
            if isinstance(value, str):
                values[key] = value
            else:  # an uploaded file: read it as UTF-8 text (scenario_script uploads)
                raw = await value.read()
                try:
                    values[key] = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise invalid_argument(key, "is not UTF-8 text") from exc
        return Params(values)
    raise PlatformError(INVALID_ARGUMENTS,
                        f"Invalid arguments: unsupported content type {content_type!r}; "
                        "send application/x-www-form-urlencoded or application/json")


class Params:
    """Typed access to request parameters; every failure is a ``PlatformError`` naming it.

    An empty value counts as absent.

    Args:
        values: raw parameter values by name.
    """

    def __init__(self, values: Mapping[str, str]):
        self._values = dict(values)

    def raw(self, name: str) -> str | None:
        """The value as sent, ``None`` when absent or empty."""
        value = self._values.get(name)
        return value if value not in (None, "") else None

    def has(self, name: str) -> bool:
        """Whether ``name`` was sent with a non-empty value."""
        return self.raw(name) is not None

    def string(self, name: str, *, required: bool = False, max_length: int | None = None,
            allow_empty: bool = False) -> str | None:
        """A string parameter.

        Args:
            name: parameter name.
            required: raise 101 when absent.
            max_length: raise 101 when longer (characters).
            allow_empty: keep ``""`` as a value instead of treating it as absent.
        """
        value = self._values.get(name) if allow_empty else self.raw(name)
        if value is None:
            if required:
                raise missing_argument(name)
            return None
        if max_length is not None and len(value) > max_length:
            raise invalid_argument(name, f"is longer than {max_length} characters")
        return value

    def integer(self, name: str, *, required: bool = False, default: int | None = None,
            minimum: int | None = None) -> int | None:
        """An integer parameter (``default`` when absent)."""
        value = self.raw(name)
        if value is None:
            if required:
                raise missing_argument(name)
            return default
        try:
            number = int(value.strip())
        except ValueError as exc:
            raise invalid_argument(name, f"must be an integer, got {value[:50]!r}") from exc
        if not INT_MIN <= number <= INT_MAX:
            raise invalid_argument(name, f"is out of range ({INT_MIN}..{INT_MAX})")
        if minimum is not None and number < minimum:
            raise invalid_argument(name, f"must be >= {minimum}, got {number}")
        return number

    def boolean(self, name: str, *, default: bool = False) -> bool:
        """A boolean parameter: ``true``/``false``/``1``/``0``."""
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise invalid_argument(name, f"must be true or false, got {value!r}")

    def str_list(self, name: str) -> list[str] | None:
        """A ``;``- or ``,``-separated list of strings, ``None`` when absent."""
        value = self.raw(name)
        if value is None:
            return None
        sep = ";" if ";" in value else ","
        items = [item.strip() for item in value.split(sep)]
        items = [item for item in items if item]
        if not items:
            raise invalid_argument(name, "is an empty list")
        return items

    def int_list(self, name: str) -> list[int] | None:
        """A ``;``- or ``,``-separated list of integers, ``None`` when absent."""
        items = self.str_list(name)
        if items is None:
            return None
        try:
            numbers = [int(item) for item in items]
        except ValueError as exc:
            raise invalid_argument(name, "must be a list of integers, got "
                                         f"{(self.raw(name) or '')[:50]!r}") from exc
        if any(not INT_MIN <= n <= INT_MAX for n in numbers):
            raise invalid_argument(name, f"has an item out of range ({INT_MIN}..{INT_MAX})")
        return numbers

    def is_all(self, name: str) -> bool:
        """Whether ``name`` is Voximplant's ``all`` (select every item)."""
        value = self.raw(name)
        return value is not None and value.strip().lower() == "all"

    def date(self, name: str) -> datetime | None:
        """A UTC date ``YYYY-MM-DD HH:MM:SS`` (or ``YYYY-MM-DD``), ``None`` when absent."""
        value = self.raw(name)
        if value is None:
            return None
        for fmt in (DATE_FORMAT, "%Y-%m-%d"):
            try:
                return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
        raise PlatformError(INVALID_DATE_FORMAT,
                            f"Invalid date format: '{name}' must be YYYY-MM-DD HH:MM:SS (UTC), "
                            f"got {value!r}")

    def paging(self, *, max_count: int = 1000) -> tuple[int, int]:
        """``(offset, count)``: Voximplant's defaults 0 and 20, ``count`` capped at ``max_count``.
        """
        offset = self.integer("offset", default=0, minimum=0)
        count = self.integer("count", default=20, minimum=0)
        assert offset is not None and count is not None
        return offset, min(count, max_count)
