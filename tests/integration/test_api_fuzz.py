"""Fuzzing the HTTP API from its own ``/openapi.json`` with schemathesis.

Every documented operation (the platform_api methods, session access URLs, health)
gets generated requests against the ASGI app with a real SQLite file and the fake
runner; most requests carry valid credentials (so the methods run, not only the
authentication) and some keep the generated ones. Checked: no 5xx, and status code,
content type and body conform to the documented responses
(:mod:`gateway.api.responses`). Bounded and derandomized, so it is reproducible and
takes seconds.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api import create_app
from gateway.api.responses import declare_responses
from gateway.settings import Settings
from gateway.store import Store, open_store
from tests.fakes.fake_scenario_runner import FakeScenarioRunner
from tests.integration.api_support import ACCOUNT, OTHER_ACCOUNT

#: Generated examples per operation.
MAX_EXAMPLES = 50
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


async def _seed(store: Store) -> None:
    """Two accounts with a few applications, scenarios and rules (ids 1, 2, ...)."""
    for account_id, name, key in ((1, "one", ACCOUNT["api_key"]),
                                  (2, "two", OTHER_ACCOUNT["api_key"])):
        await store.ensure_account(account_id, name, key)
        for i in range(2):
            app = await store.add_application(account_id, f"app{i}")
            sc = await store.add_scenario(account_id, f"s{i}", "X = 1\n")
            await store.add_rule(account_id, application_id=app.application_id,
                                 rule_name=f"r{i}", rule_pattern=".*",
                                 scenario_ids=[sc.scenario_id])


@pytest.fixture
def api_schema(tmp_path) -> Iterator[schemathesis.BaseSchema]:
    store = asyncio.run(_open(str(tmp_path / "fuzz.db")))
    runner = FakeScenarioRunner(store=store)
    app = create_app(store=store, runner=runner, settings=Settings(custom_data_max_bytes=64))
    routes = [r for r in app.routes if getattr(r, "operation_id", None) == "platform_api"]
    if routes and not routes[0].responses:  # until create_app declares them itself
        declare_responses(app)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asyncio.run(store.close())


async def _open(path: str) -> Store:
    store = await open_store(f"sqlite:///{path}")
    await _seed(store)
    return store


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_schema(case: schemathesis.Case) -> None:
    body = case.body
    if isinstance(body, dict) and "api_key" in body:
        # Mostly valid credentials, so the methods run; a deterministic 1 in 8 keeps
        # the generated ones to fuzz authentication.
        if zlib.crc32(repr(sorted(body.items(), key=str)).encode()) % 8:
            body["account_id"] = int(ACCOUNT["account_id"])
            body["api_key"] = ACCOUNT["api_key"]
    case.call_and_validate(checks=CHECKS)
