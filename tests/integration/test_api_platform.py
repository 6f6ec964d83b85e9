"""platform_api (Voximplant HTTP API) over ASGI: auth, errors, CRUD, StartScenarios, history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from gateway.errors import LimitExceeded
from gateway.runtime.records import CallRecord
from tests.integration.api_support import (
    CUSTOM_DATA_LIMIT,
    OTHER_ACCOUNT,
    ApiEnv,
    env,  # noqa: F401 (fixture)
    error_code,
)


async def _setup_rule(env: ApiEnv, scenarios: tuple[str, ...] = ("first", "second")) -> int:
    app = await env.ok("AddApplication", application_name="ivr")
    assert app["result"] == 1 and app["application_name"] == "ivr"  # no suffix added
    ids = []
    for i, name in enumerate(scenarios):
        added = await env.ok("AddScenario", scenario_name=name, scenario_script=f"X{i} = {i}\n")
        ids.append(str(added["scenario_id"]))
    params = {"scenario_id": ";".join(reversed(ids))} if ids else {}
    rule = await env.ok("AddRule", application_id=app["application_id"], rule_name="main",
                        rule_pattern=r"\+1\d+", **params)
    assert rule["result"] == 1
    return rule["rule_id"]


# -- transport, auth, dispatch --------------------------------------------------------


async def test_missing_or_wrong_credentials_is_error_100(env: ApiEnv) -> None:
    assert error_code(await env.call("GetApplications", auth={})) == 100
    assert error_code(await env.call("GetApplications", auth={"account_id": "1"})) == 100
    assert error_code(await env.call("GetApplications",
                                     auth={"account_id": "1", "api_key": "wrong"})) == 100
    assert error_code(await env.call("GetApplications",
                                     auth={"account_id": "x", "api_key": "key-one"})) == 100
    assert error_code(await env.call("GetApplications",
                                     auth={"account_id": "3", "api_key": "key-one"})) == 100
    body = await env.call("GetApplications", auth={"account_id": "1", "api_key": "wrong"})
    assert body["error"]["msg"] == "Authorization failed"


async def test_missing_cmd_is_102_and_unknown_command_is_103(env: ApiEnv) -> None:
    reply = await env.client.post("/platform_api", data={"account_id": "1", "api_key": "k"})
    assert reply.status_code == 200 and error_code(reply.json()) == 102
    body = await env.call("NoSuchMethod")
    assert error_code(body) == 103 and "NoSuchMethod" in body["error"]["msg"]
    reply = await env.client.post("/platform_api/NoSuchMethod/", data={"account_id": "1"})
    assert error_code(reply.json()) == 103


async def test_method_in_path_json_body_and_query_string(env: ApiEnv) -> None:
    reply = await env.client.post("/platform_api/AddApplication/",
                                  json={"account_id": 1, "api_key": "key-one",
                                        "application_name": "json-app"})
    assert reply.json()["application_name"] == "json-app"
    reply = await env.client.post("/platform_api/AddApplication",  # no trailing slash
                                  data={"account_id": "1", "api_key": "key-one",
                                        "application_name": "form-app"})
    assert reply.json()["application_name"] == "form-app"
    reply = await env.client.get("/platform_api/GetApplications/",
                                 params={"account_id": "1", "api_key": "key-one"})
    assert reply.json()["total_count"] == 2
    reply = await env.client.get("/platform_api", params={"cmd": "GetApplications",
                                                          "account_id": "1",
                                                          "api_key": "key-one",
                                                          "application_name": "json-app"})
    assert [a["application_name"] for a in reply.json()["result"]] == ["json-app"]


async def test_bad_bodies_get_precise_errors_not_500(env: ApiEnv) -> None:
    reply = await env.client.post("/platform_api/GetApplications/", content=b"{not json",
                                  headers={"content-type": "application/json"})
    assert reply.status_code == 200
    body = reply.json()
    assert error_code(body) == 101 and "JSON" in body["error"]["msg"]
    reply = await env.client.post("/platform_api/GetApplications/", content=b"[1, 2]",
                                  headers={"content-type": "application/json"})
    assert error_code(reply.json()) == 101 and "object" in reply.json()["error"]["msg"]
    reply = await env.client.post("/platform_api/GetApplications/", content=b"\x00\x01",
                                  headers={"content-type": "application/octet-stream"})
    assert error_code(reply.json()) == 101


async def test_invalid_parameters_name_the_parameter(env: ApiEnv) -> None:
    body = await env.call("AddApplication")
    assert error_code(body) == 101 and "'application_name'" in body["error"]["msg"]
    body = await env.call("GetApplications", count="many")
    assert error_code(body) == 101 and "'count'" in body["error"]["msg"]
    body = await env.call("GetApplications", offset="-1")
    assert error_code(body) == 101 and "'offset'" in body["error"]["msg"]
    body = await env.call("GetCallHistory", from_date="yesterday")
    assert error_code(body) == 111 and "'from_date'" in body["error"]["msg"]
    app = await env.ok("AddApplication", application_name="a")
    body = await env.call("AddRule", application_id=app["application_id"], rule_name="r",
                          rule_pattern="(unclosed")
    assert error_code(body) == 101 and "'rule_pattern'" in body["error"]["msg"]
    body = await env.call("AddRule", rule_name="r", rule_pattern=".*")
    assert error_code(body) == 101 and "'application_id'" in body["error"]["msg"]
    body = await env.call("AddRule", application_id=999, rule_name="r", rule_pattern=".*")
    assert error_code(body) == 9001


async def test_duplicate_names_are_refused(env: ApiEnv) -> None:
    await env.ok("AddApplication", application_name="dup")
    assert error_code(await env.call("AddApplication", application_name="dup")) == 9003
    await env.ok("AddScenario", scenario_name="s", scenario_script="pass")
    assert error_code(await env.call("AddScenario", scenario_name="s",
                                     scenario_script="pass")) == 9003
    await env.ok("AddScenario", scenario_name="s", scenario_script="Y = 2", rewrite="true")
    got = await env.ok("GetScenarios", scenario_name="s", with_script="true")
    assert got["result"][0]["scenario_script"] == "Y = 2"


# -- scenarios ------------------------------------------------------------------------


async def test_scenario_with_syntax_error_names_the_line(env: ApiEnv) -> None:
    script = "def on_started(event):\n    x = 1\n    return (\n"
    body = await env.call("AddScenario", scenario_name="broken", scenario_script=script)
    assert error_code(body) == 9004
    assert body["error"]["msg"].startswith("Scenario does not compile: line 3")
    body = await env.call("AddScenario", scenario_name="broken2",
                          scenario_script="a = 1\nb = = 2\n")
    assert body["error"]["msg"] == "Scenario does not compile: line 2: invalid syntax"
    assert (await env.ok("GetScenarios"))["total_count"] == 0


async def test_set_scenario_info_and_del_scenario(env: ApiEnv) -> None:
    sid = (await env.ok("AddScenario", scenario_name="s1", scenario_script="A = 1"))[
        "scenario_id"]
    body = await env.call("SetScenarioInfo", scenario_id=sid, scenario_script="A = (")
    assert error_code(body) == 9004 and "line 1" in body["error"]["msg"]
    await env.ok("SetScenarioInfo", scenario_id=sid, scenario_name="renamed",
                 scenario_script="A = 2")
    await env.ok("SetScenarioInfo", required_scenario_name="renamed", scenario_script="A = 3")
    got = await env.ok("GetScenarios", scenario_id=sid, with_script="true")
    assert got["result"][0]["scenario_name"] == "renamed"
    assert got["result"][0]["scenario_script"] == "A = 3"
    assert "scenario_script" not in (await env.ok("GetScenarios"))["result"][0]
    await env.ok("AddScenario", scenario_name="s2", scenario_script="")
    await env.ok("DelScenario", scenario_id=f"{sid}")
    assert error_code(await env.call("DelScenario", scenario_id=sid)) == 9002
    await env.ok("DelScenario", scenario_name="s2")
    assert (await env.ok("GetScenarios"))["total_count"] == 0


# -- rules and StartScenarios ---------------------------------------------------------


async def test_start_scenarios_round_trip(env: ApiEnv) -> None:
    rule_id = await _setup_rule(env)
    rules = await env.ok("GetRules", application_name="ivr", with_scenarios="true")
    assert rules["total_count"] == 1
    assert [s["scenario_name"] for s in rules["result"][0]["scenarios"]] == ["second", "first"]

    custom = json.dumps({"destination": "+15550001"})
    body = await env.ok("StartScenarios", rule_id=rule_id, script_custom_data=custom)
    assert body["result"] == 1
    assert body["media_session_access_url"] == "http://gw.test/sessions/s1/secret-1"
    assert body["media_session_access_secure_url"].startswith("https://")
    assert isinstance(body["call_session_history_id"], int)

    match, data = env.runner.started[0]
    assert data == custom
    assert (match.account_id, match.rule_id, match.rule_name, match.application_name) == (
        1, rule_id, "main", "ivr")
    assert [(s.name, s.script) for s in match.scenarios] == [("second", "X1 = 1\n"),
                                                             ("first", "X0 = 0\n")]


async def test_start_scenarios_by_rule_name_with_json_custom_data(env: ApiEnv) -> None:
    await _setup_rule(env)
    reply = await env.client.post("/platform_api/StartScenarios/", json={
        "account_id": 1, "api_key": "key-one", "rule_name": "main", "application_name": "ivr",
        "script_custom_data": {"a": 1}})
    assert reply.json()["result"] == 1
    assert env.runner.started[0][1] == '{"a":1}'


async def test_unknown_rule_is_147(env: ApiEnv) -> None:
    body = await env.call("StartScenarios", rule_id=424242)
    assert error_code(body) == 147 and body["error"]["msg"].startswith("Invalid rule")
    assert error_code(await env.call("StartScenarios")) == 101
    assert env.runner.started == []


async def test_rule_without_scenarios_is_375(env: ApiEnv) -> None:
    rule_id = await _setup_rule(env, scenarios=())
    assert error_code(await env.call("StartScenarios", rule_id=rule_id)) == 375
    body = await env.call("AddRule", application_name="ivr", rule_name="two",
                          rule_pattern=".*", scenario_name="gone")
    assert error_code(body) == 9002  # binding an unknown scenario is refused
    assert env.runner.started == []


async def test_deleting_the_only_scenario_leaves_rule_without_scenarios(env: ApiEnv) -> None:
    rule_id = await _setup_rule(env, scenarios=("only",))
    await env.ok("DelScenario", scenario_name="only")
    assert error_code(await env.call("StartScenarios", rule_id=rule_id)) == 375


async def test_custom_data_over_the_limit_is_refused(env: ApiEnv) -> None:
    rule_id = await _setup_rule(env)
    await env.ok("StartScenarios", rule_id=rule_id, script_custom_data="x" * CUSTOM_DATA_LIMIT)
    body = await env.call("StartScenarios", rule_id=rule_id,
                          script_custom_data="é" * (CUSTOM_DATA_LIMIT // 2 + 1))
    assert error_code(body) == 9005
    assert body["error"]["msg"] == (f"script_custom_data is too long: {CUSTOM_DATA_LIMIT + 2} "
                                    f"bytes, the limit is {CUSTOM_DATA_LIMIT} bytes")
    assert len(env.runner.started) == 1


async def test_runner_refusal_becomes_an_error_reply(env: ApiEnv) -> None:
    rule_id = await _setup_rule(env)
    env.runner.fail_with = LimitExceeded("too many sessions")
    body = await env.call("StartScenarios", rule_id=rule_id)
    assert error_code(body) == 9006 and "too many sessions" in body["error"]["msg"]


async def test_del_rule(env: ApiEnv) -> None:
    rule_id = await _setup_rule(env)
    assert error_code(await env.call("DelRule", rule_name="main")) == 101  # needs application
    await env.ok("DelRule", rule_id=rule_id)
    assert error_code(await env.call("DelRule", rule_id=rule_id)) == 147
    assert (await env.ok("GetRules"))["total_count"] == 0


async def test_account_isolation(env: ApiEnv) -> None:
    rule_id = await _setup_rule(env)
    other = OTHER_ACCOUNT
    assert (await env.ok("GetApplications", auth=other))["total_count"] == 0
    assert (await env.ok("GetScenarios", auth=other))["total_count"] == 0
    assert (await env.ok("GetRules", auth=other))["total_count"] == 0
    assert error_code(await env.call("StartScenarios", auth=other, rule_id=rule_id)) == 147
    assert error_code(await env.call("GetRules", auth=other, application_name="ivr")) == 9001
    assert error_code(await env.call("DelRule", auth=other, rule_id=rule_id)) == 147
    assert error_code(await env.call("DelScenario", auth=other, scenario_name="first")) == 9002
    await env.ok("AddApplication", auth=other, application_name="ivr")  # same name is fine
    await env.ok("StartScenarios", rule_id=rule_id)
    assert (await env.ok("GetCallHistory", auth=other))["total_count"] == 0
    assert (await env.ok("GetCallHistory"))["total_count"] == 1
    assert len(env.runner.started) == 1


# -- history --------------------------------------------------------------------------


async def test_get_call_history_with_calls(env: ApiEnv) -> None:
    rule_id = await _setup_rule(env)
    started = await env.ok("StartScenarios", rule_id=rule_id, script_custom_data="hello")
    history_id = started["call_session_history_id"]
    record = (await env.store.get_call_history(
        1, from_date=datetime.now(UTC) - timedelta(minutes=1),
        to_date=datetime.now(UTC) + timedelta(minutes=1))).items[0]
    t = record.start_date
    record.calls = [CallRecord(call_id="c1", start_time=t, incoming=False,
                               local_number="+15550000", remote_number="+15551111",
                               duration=12, successful=True, result_code=200,
                               finish_reason="normal", end_time=t + timedelta(seconds=13),
                               direction="out")]
    record.duration, record.finish_reason = 15, "terminated"
    await env.store.session_finished(record)

    now = datetime.now(UTC)
    body = await env.ok("GetCallHistory", with_calls="true",
                        from_date=(now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
                        to_date=(now + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"))
    assert body["total_count"] == 1 and body["count"] == 1
    item = body["result"][0]
    assert item["call_session_history_id"] == history_id
    assert (item["account_id"], item["rule_name"], item["custom_data"]) == (1, "main", "hello")
    assert (item["duration"], item["finish_reason"]) == (15, "terminated")
    datetime.strptime(item["start_date"], "%Y-%m-%d %H:%M:%S")
    call = item["calls"][0]
    assert call == {"call_id": "c1", "start_time": t.strftime("%Y-%m-%d %H:%M:%S"),
                    "end_time": (t + timedelta(seconds=13)).strftime("%Y-%m-%d %H:%M:%S"),
                    "duration": 12, "local_number": "+15550000",
                    "remote_number": "+15551111", "incoming": False, "successful": True,
                    "result_code": 200, "finish_reason": "normal", "direction": "out"}
    body = await env.ok("GetCallHistory")  # default window: last 30 days
    assert "calls" not in body["result"][0]
    body = await env.ok("GetCallHistory", rule_name="other")
    assert body["total_count"] == 0
    body = await env.ok("GetCallHistory", call_session_history_id=history_id)
    assert body["total_count"] == 1


async def test_paging_reports_total_count(env: ApiEnv) -> None:
    for i in range(25):
        await env.ok("AddApplication", application_name=f"app{i:02d}")
    page = await env.ok("GetApplications")
    assert (page["count"], page["total_count"]) == (20, 25)
    page = await env.ok("GetApplications", offset=20, count=10)
    assert (page["count"], page["total_count"]) == (5, 25)
    assert page["result"][0]["application_name"] == "app20"
    datetime.strptime(page["result"][0]["created"], "%Y-%m-%d %H:%M:%S")


async def test_unexpected_failure_is_a_json_error_without_secrets(env: ApiEnv, caplog) -> None:
    rule_id = await _setup_rule(env)
    env.runner.fail_with = None

    async def broken(match, custom_data):
        raise RuntimeError("boom")

    env.runner.start_scenarios = broken  # type: ignore[method-assign]
    reply = await env.client.post("/platform_api", data={
        "cmd": "StartScenarios", "account_id": "1", "api_key": "key-one", "rule_id": rule_id})
    assert reply.status_code == 500
    assert reply.json() == {"error": {"code": 2, "msg": "Internal error"}}
    assert "key-one" not in caplog.text
