"""StartScenarios limits through the Voximplant-compatible API: script_custom_data
(Voximplant's 200 bytes by default, our own larger limit when configured) and the
256 KiB scenario size."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.api import create_app
from gateway.api.session_methods import custom_data_limit
from gateway.runtime.loader import MAX_SCENARIO_BYTES
from gateway.settings import Settings
from gateway.store import open_store
from tests.fakes.fake_scenario_runner import FakeScenarioRunner
from tests.integration.api_support import ACCOUNT, ApiEnv, error_code


@pytest.fixture
async def make_env(tmp_path) -> AsyncIterator:
    stores = []

    async def build(**settings) -> ApiEnv:
        store = await open_store(f"sqlite:///{tmp_path / f'api{len(stores)}.db'}")
        stores.append(store)
        await store.ensure_account(1, "one", ACCOUNT["api_key"])
        runner = FakeScenarioRunner(store=store)
        app = create_app(store=store, runner=runner, settings=Settings(**settings))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://gw.test")
        stores.append(client)
        return ApiEnv(client, store, runner)

    yield build
    for thing in reversed(stores):
        await (thing.aclose() if isinstance(thing, httpx.AsyncClient) else thing.close())


async def rule_with(env: ApiEnv, script: str) -> int:
    app = await env.ok("AddApplication", application_name="limits")
    sc = await env.ok("AddScenario", scenario_name="s", scenario_script=script)
    rule = await env.ok("AddRule", application_id=app["application_id"], rule_name="r",
                        rule_pattern=".*", scenario_id=sc["scenario_id"])
    return rule["rule_id"]


async def test_custom_data_is_limited_to_voximplants_200_bytes_by_default(make_env) -> None:
    env = await make_env()
    assert custom_data_limit(Settings()) == 200
    rule_id = await rule_with(env, "x = 1\n")
    await env.ok("StartScenarios", rule_id=rule_id, script_custom_data="x" * 200)
    body = await env.call("StartScenarios", rule_id=rule_id,
                          script_custom_data="é" * 100 + "x")  # 201 bytes in UTF-8
    assert error_code(body) == 9005
    assert body["error"]["msg"] == (
        "script_custom_data is too long: 201 bytes, the limit is 200 bytes (Voximplant's "
        "limit; VGW_CUSTOM_DATA_VOXIMPLANT_LIMIT=false allows up to 4096 bytes)")
    assert len(env.runner.started) == 1


async def test_our_own_larger_custom_data_limit_when_configured(make_env) -> None:
    env = await make_env(custom_data_voximplant_limit=False)
    rule_id = await rule_with(env, "x = 1\n")
    await env.ok("StartScenarios", rule_id=rule_id, script_custom_data="x" * 4096)
    body = await env.call("StartScenarios", rule_id=rule_id, script_custom_data="x" * 4097)
    assert error_code(body) == 9005
    assert body["error"]["msg"] == ("script_custom_data is too long: 4097 bytes, the limit "
                                    "is 4096 bytes")
    bigger = await make_env(custom_data_voximplant_limit=False, custom_data_max_bytes=10000)
    rule_id = await rule_with(bigger, "x = 1\n")
    await bigger.ok("StartScenarios", rule_id=rule_id, script_custom_data="x" * 10000)


async def test_a_scenario_over_256_kib_is_refused_at_upload_and_at_start(make_env) -> None:
    env = await make_env()
    filler = "# " + "x" * 98 + "\n"
    big = "x = 1\n" + filler * (MAX_SCENARIO_BYTES // len(filler) + 1)
    assert len(big.encode()) > MAX_SCENARIO_BYTES
    too_big = (f"Invalid arguments: 'scenario_script' is {len(big.encode())} bytes; the "
               f"limit is 262144 bytes (256 KiB)")
    body = await env.call("AddScenario", scenario_name="s", scenario_script=big)
    assert error_code(body) == 101 and body["error"]["msg"] == too_big
    rule_id = await rule_with(env, "x = 1\n")
    body = await env.call("SetScenarioInfo", scenario_name="s", scenario_script=big)
    assert error_code(body) == 101 and body["error"]["msg"] == too_big
    # one stored before the limit existed (straight into the store) cannot start a session
    await env.store.set_scenario_info(ACCOUNT["account_id"], scenario_name="s",
                                      scenario_script=big)
    body = await env.call("StartScenarios", rule_id=rule_id)
    assert error_code(body) == 9006
    assert body["error"]["msg"] == (f"Session could not be started: scenario 's' is "
                                    f"{len(big.encode())} bytes, the limit is 262144 bytes "
                                    f"(256 KiB)")
    assert env.runner.started == []
    # exactly 256 KiB is fine
    exact = big[:MAX_SCENARIO_BYTES - 1] + "\n"
    await env.ok("SetScenarioInfo", scenario_name="s", scenario_script=exact)
    await env.ok("StartScenarios", rule_id=rule_id)
