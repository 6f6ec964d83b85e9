"""The HTTP client behind ``vgw``'s management subcommands: plain platform_api calls.

Authentication, in this order: a service-account credentials file (``--credentials``
or ``VGW_CREDENTIALS``, Voximplant's JSON with ``account_id``, ``key_id`` and
``private_key``) signs an RS256 JWT per request (``kid`` = key id, ``iss`` =
account id, ``exp`` = ``iat`` + 60 s), as voximplant-apiclient does; otherwise
``VGW_ACCOUNT_ID`` + ``VGW_API_KEY`` are sent as parameters.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx


class ApiError(Exception):
    """A platform_api error reply: ``{"error": {"code", "msg"}}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"error {code}: {msg}")
        self.code = code
        self.msg = msg


class PlatformClient:
    """Calls ``POST <url>/platform_api/<Cmd>/`` with form parameters.

    Args:
        url: gateway base URL, e.g. ``http://127.0.0.1:8080``.
        account_id: account for api_key auth.
        api_key: legacy API key.
        credentials: path of a service-account credentials JSON (JWT auth).
        verify: TLS verification (True, False or a CA bundle path).
    """

    def __init__(self, url: str, *, account_id: str | None = None, api_key: str | None = None,
                 credentials: str | None = None, verify: bool | str = True) -> None:
        self.url = url.rstrip("/")
        self._account_id = account_id
        self._api_key = api_key
        self._creds: dict[str, Any] | None = None
        if credentials:
            self._creds = json.loads(Path(credentials).read_text())
        if self._creds is None and not (account_id and api_key):
            raise ApiError(100, "no credentials: set VGW_ACCOUNT_ID and VGW_API_KEY, "
                                "or --credentials FILE")
        self._http = httpx.Client(base_url=self.url, timeout=30, verify=verify)

    @classmethod
    def from_env(cls, url: str | None = None, credentials: str | None = None) -> PlatformClient:
        """Client from ``VGW_URL``, ``VGW_ACCOUNT_ID``, ``VGW_API_KEY``, ``VGW_CREDENTIALS``."""
        verify: bool | str = os.environ.get("VGW_CA_BUNDLE") or True
        return cls(url or os.environ.get("VGW_URL", "http://127.0.0.1:8080"),
                   account_id=os.environ.get("VGW_ACCOUNT_ID"),
                   api_key=os.environ.get("VGW_API_KEY"),
                   credentials=credentials or os.environ.get("VGW_CREDENTIALS"), verify=verify)

    def _auth(self) -> tuple[dict[str, str], dict[str, str]]:
        if self._creds is not None:
            import jwt  # PyJWT, only needed for service-account auth

            now = int(time.time())
            token = jwt.encode({"iss": str(self._creds["account_id"]), "iat": now,
                                "exp": now + 60},
                               self._creds["private_key"], algorithm="RS256",
                               headers={"kid": str(self._creds["key_id"])})
            return {}, {"Authorization": f"Bearer {token}"}
        assert self._account_id and self._api_key
        return {"account_id": self._account_id, "api_key": self._api_key}, {}

    def call(self, cmd: str, **params: Any) -> dict[str, Any]:
        """Run ``cmd``; returns the whole JSON reply.

        Raises:
            ApiError: the gateway answered ``{"error": ...}``.
        """
        auth, headers = self._auth()
        data = {**auth, **{k: _form(v) for k, v in params.items() if v is not None}}
        reply = self._http.post(f"/platform_api/{cmd}/", data=data, headers=headers)
        try:
            body = reply.json()
        except ValueError:
            raise ApiError(reply.status_code, reply.text[:200]) from None
        if "error" in body:
            raise ApiError(int(body["error"].get("code", 0)), str(body["error"].get("msg")))
        return body

    def close(self) -> None:
        self._http.close()


def _form(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)
