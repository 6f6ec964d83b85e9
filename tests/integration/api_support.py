"""Fixtures for platform_api tests: a SQLite store, a fake runner, an ASGI client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.api import create_app
from gateway.settings import Settings
from gateway.store import Store, open_store
from tests.fakes.fake_scenario_runner import FakeScenarioRunner

ACCOUNT = {"account_id": "1", "api_key": "key-one"}
OTHER_ACCOUNT = {"account_id": "2", "api_key": "key-two"}
CUSTOM_DATA_LIMIT = 64


@dataclass
class ApiEnv:
    """Everything a platform_api test touches."""

    client: httpx.AsyncClient
    store: Store
    runner: FakeScenarioRunner

    async def call(self, cmd: str, auth: dict[str, str] | None = None,
                   **params: Any) -> dict[str, Any]:
        """POST ``cmd`` form-encoded (as voximplant-apiclient does) and return the JSON."""
        data = {"cmd": cmd, **(ACCOUNT if auth is None else auth),
                **{k: str(v) for k, v in params.items()}}
        reply = await self.client.post("/platform_api", data=data)
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def ok(self, cmd: str, auth: dict[str, str] | None = None,
                 **params: Any) -> dict[str, Any]:
        """Like :meth:`call`, asserting there is no error."""
        body = await self.call(cmd, auth, **params)
        assert "error" not in body, body
        return body


@pytest.fixture
async def env(tmp_path) -> AsyncIterator[ApiEnv]:
    store = await open_store(f"sqlite:///{tmp_path / 'api.db'}")
    await store.ensure_account(1, "one", ACCOUNT["api_key"])
    await store.ensure_account(2, "two", OTHER_ACCOUNT["api_key"])
    runner = FakeScenarioRunner(store=store)
    settings = Settings(custom_data_max_bytes=CUSTOM_DATA_LIMIT)
    app = create_app(store=store, runner=runner, settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
        yield ApiEnv(client, store, runner)
    await store.close()


def error_code(body: dict[str, Any]) -> int:
    """The error code of a reply (fails when the reply is a result)."""
    assert "error" in body, body
    assert set(body["error"]) == {"code", "msg"}
    return body["error"]["code"]
