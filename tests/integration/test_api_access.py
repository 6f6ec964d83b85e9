"""Session access URLs, /health and the OpenAPI document of the HTTP API."""

from __future__ import annotations

from gateway.runtime.records import AccessResponse
from tests.integration.api_support import ApiEnv, env  # noqa: F401 (fixture)


async def _start(env: ApiEnv) -> str:
    await env.ok("AddApplication", application_name="a")
    await env.ok("AddScenario", scenario_name="s", scenario_script="pass")
    rule = await env.ok("AddRule", application_name="a", rule_name="r", rule_pattern=".*",
                        scenario_name="s")
    started = await env.ok("StartScenarios", rule_id=rule["rule_id"])
    return started["media_session_access_url"].removeprefix("http://gw.test")


async def test_health(env: ApiEnv) -> None:
    reply = await env.client.get("/health")
    assert reply.status_code == 200 and reply.json() == {"status": "ok"}


async def test_access_url_delivers_request_and_returns_scenario_reply(env: ApiEnv) -> None:
    path = await _start(env)
    env.runner.access_reply = AccessResponse(201, b"<ok/>", "application/xml")
    reply = await env.client.post(f"{path}/hook/x?a=1&b=2", content=b"payload",
                                  headers={"X-Token": "t"})
    assert (reply.status_code, reply.content) == (201, b"<ok/>")
    assert reply.headers["content-type"] == "application/xml"
    got = env.runner.accesses[-1]
    assert (got.session_id, got.secret, got.method) == ("s1", "secret-1", "POST")
    assert got.path == "/hook/x?a=1&b=2"
    assert got.content == b"payload" and got.headers["x-token"] == "t"

    reply = await env.client.get(path)  # no sub-path, no auth parameters needed
    assert reply.status_code == 201
    assert env.runner.accesses[-1].path == "/" and env.runner.accesses[-1].method == "GET"
    reply = await env.client.put(f"{path}/")
    assert env.runner.accesses[-1].method == "PUT"


async def test_access_url_with_wrong_secret_is_404(env: ApiEnv) -> None:
    await _start(env)
    reply = await env.client.get("/sessions/s1/wrong")
    assert reply.status_code == 404
    reply = await env.client.delete("/sessions/s9/secret-9/x")
    assert reply.status_code == 404


async def test_openapi_documents_every_platform_method(env: ApiEnv) -> None:
    doc = (await env.client.get("/openapi.json")).json()
    for name in ("AddApplication", "GetApplications", "AddScenario", "GetScenarios",
                 "SetScenarioInfo", "DelScenario", "AddRule", "GetRules", "DelRule",
                 "StartScenarios", "GetCallHistory"):
        op = doc["paths"][f"/platform_api/{name}/"]["post"]
        schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        assert {"account_id", "api_key"} <= set(schema["required"])
    start = doc["paths"]["/platform_api/StartScenarios/"]["post"]["requestBody"]
    props = start["content"]["application/json"]["schema"]["properties"]
    assert "script_custom_data" in props
    assert "/platform_api" in doc["paths"] and "/health" in doc["paths"]
