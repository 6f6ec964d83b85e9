"""End-to-end fixtures: a whole gateway in-process (real SIP, RTP, HTTP, SQLite file)
talking to the fake OpenAI Realtime server through the official SDK."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.server import Gateway
from gateway.settings import Settings
from tests.fakes.fake_openai_realtime import FakeRealtimeServer

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "e2e-key"


@dataclass
class E2E:
    """A running gateway, its fake AI and an HTTP client for its platform_api."""

    gw: Gateway
    fake: FakeRealtimeServer
    http: httpx.AsyncClient
    tmp: Path

    @property
    def sip_port(self) -> int:
        return self.gw.sip.port

    async def api(self, cmd: str, auth: dict[str, Any] | None = None, **params: Any) -> dict:
        """POST a platform_api command form-encoded; returns the JSON reply."""
        data = {"account_id": "1", "api_key": API_KEY} if auth is None else dict(auth)
        data.update({k: str(v) for k, v in params.items()})
        reply = await self.http.post(f"/platform_api/{cmd}/", data=data)
        return reply.json()

    async def ok(self, cmd: str, **params: Any) -> dict:
        body = await self.api(cmd, **params)
        assert "error" not in body, body
        return body

    async def rule_with(self, pattern: str, *scripts: str, name: str = "r") -> int:
        """Create an application + scenarios + rule; returns the rule id."""
        apps = await self.ok("GetApplications", application_name="e2e")
        if apps["result"]:
            app_id = apps["result"][0]["application_id"]
        else:
            app_id = (await self.ok("AddApplication", application_name="e2e"))["application_id"]
        ids = []
        for i, script in enumerate(scripts):
            sname = f"{name}_{i}_{random.randrange(1 << 30)}"
            ids.append(str((await self.ok("AddScenario", scenario_name=sname,
                                          scenario_script=script))["scenario_id"]))
        rule = await self.ok("AddRule", application_id=app_id, rule_name=name,
                             rule_pattern=pattern, scenario_id=";".join(ids))
        return int(rule["rule_id"])


def shipped(name: str) -> str:
    """Source of a shipped scenario in scenarios/."""
    return (ROOT / "scenarios" / name).read_text()


def make_settings(tmp: Path, **over: Any) -> Settings:
    base = random.randrange(40000, 59000, 2)
    values: dict[str, Any] = dict(
        http_host="127.0.0.1", http_port=0, sip_host="127.0.0.1", sip_port=0,
        rtp_port_min=base, rtp_port_max=base + 400, database_url=f"sqlite:///{tmp / 'gw.db'}",
        logs_dir=str(tmp / "logs"), recordings_dir=str(tmp / "recordings"),
        account_id=1, api_key=API_KEY, bootstrap_inbound=False, log_level="DEBUG",
    )
    values.update(over)
    return Settings(**values)


@pytest.fixture
async def fake_ai(monkeypatch, request) -> AsyncIterator[FakeRealtimeServer]:
    """The fake AI; ``@pytest.mark.fake_mode("script")`` picks scripted turns over echo."""
    marker = request.node.get_closest_marker("fake_mode")
    async with FakeRealtimeServer(mode=marker.args[0] if marker else "echo") as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-e2e")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        yield fake


@pytest.fixture
async def e2e(tmp_path, fake_ai, request) -> AsyncIterator[E2E]:
    over = getattr(request, "param", {}) or {}
    gw = Gateway(make_settings(tmp_path, **over))
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=gw.settings.http_base_url(), timeout=10) as http:
            yield E2E(gw, fake_ai, http, tmp_path)
    finally:
        await gw.stop()
