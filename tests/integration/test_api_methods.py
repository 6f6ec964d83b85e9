"""platform_api methods (Voximplant HTTP API names): SetApplicationInfo, BindScenario,
ReorderScenarios, SetRuleInfo, ReorderRules, StartScenarios by name and its in-flight
limit (HTTP 429), GetCallHistory filters and flags.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.api.params import DATE_FORMAT
from gateway.api.session_methods import TOO_MANY_SESSIONS
from gateway.settings import Settings
from tests.integration.api_support import (
    ACCOUNT,
    ApiEnv,
    env,  # noqa: F401 (fixture)
    error_code,
)


async def _app_with_scenarios(env: ApiEnv, *names: str) -> tuple[int, dict[str, int]]:
    app = await env.ok("AddApplication", application_name="app")
    ids = {}
    for name in names:
        ids[name] = (await env.ok("AddScenario", scenario_name=name,
                                  scenario_script=f"NAME = {name!r}\n"))["scenario_id"]
    return app["application_id"], ids


async def _bound(env: ApiEnv, rule_id: int) -> list[str]:
    rules = await env.ok("GetRules", rule_id=rule_id, with_scenarios="true")
    return [s["scenario_name"] for s in rules["result"][0]["scenarios"]]


# -- applications ---------------------------------------------------------------------


async def test_set_application_info_renames_by_id_or_required_name(env: ApiEnv) -> None:
    app_id = (await env.ok("AddApplication", application_name="old"))["application_id"]
    body = await env.ok("SetApplicationInfo", application_id=app_id, application_name="new")
    assert body == {"result": 1, "application_name": "new"}
    body = await env.ok("SetApplicationInfo", required_application_name="new",
                        application_name="newer")
    assert body["application_name"] == "newer"
    got = await env.ok("GetApplications", application_id=app_id)
    assert got["result"][0]["application_name"] == "newer"
    await env.ok("AddApplication", application_name="taken")
    assert error_code(await env.call("SetApplicationInfo", application_id=app_id,
                                     application_name="taken")) == 9003
    body = await env.call("SetApplicationInfo", application_name="x")
    assert error_code(body) == 101 and "'application_id'" in body["error"]["msg"]
    assert error_code(await env.call("SetApplicationInfo", application_id=999,
                                     application_name="x")) == 9001
    # no new name: nothing changes, the current name is returned
    assert (await env.ok("SetApplicationInfo", application_id=app_id))[
        "application_name"] == "newer"


# -- scenarios bound to rules ---------------------------------------------------------


async def test_bind_scenario_appends_in_order_and_unbinds(env: ApiEnv) -> None:
    app_id, ids = await _app_with_scenarios(env, "a", "b", "c")
    rule_id = (await env.ok("AddRule", application_id=app_id, rule_name="r",
                            rule_pattern=".*", scenario_name="b"))["rule_id"]
    assert await env.ok("BindScenario", rule_id=rule_id,
                        scenario_id=f"{ids['c']};{ids['a']};{ids['b']}") == {"result": 1}
    assert await _bound(env, rule_id) == ["b", "c", "a"]  # already bound b keeps its place
    await env.ok("BindScenario", rule_name="r", application_name="app", scenario_name="c",
                 bind="false")
    assert await _bound(env, rule_id) == ["b", "a"]
    await env.ok("BindScenario", rule_id=rule_id, scenario_name="c", bind="false")  # no-op
    await env.ok("BindScenario", rule_id=rule_id, scenario_id="all", bind="false")
    assert await _bound(env, rule_id) == []
    await env.ok("BindScenario", rule_id=rule_id, scenario_id="all")
    assert await _bound(env, rule_id) == ["a", "b", "c"]
    started = await env.ok("StartScenarios", rule_id=rule_id)
    assert started["result"] == 1
    assert [s.name for s in env.runner.started[0][0].scenarios] == ["a", "b", "c"]


async def test_bind_scenario_errors_name_the_parameter(env: ApiEnv) -> None:
    app_id, _ = await _app_with_scenarios(env, "a")
    rule_id = (await env.ok("AddRule", application_id=app_id, rule_name="r",
                            rule_pattern=".*"))["rule_id"]
    body = await env.call("BindScenario", rule_id=rule_id)
    assert error_code(body) == 101 and "'scenario_id'" in body["error"]["msg"]
    body = await env.call("BindScenario", scenario_name="a")
    assert error_code(body) == 101 and "'rule_id'" in body["error"]["msg"]
    body = await env.call("BindScenario", rule_name="r", scenario_name="a")
    assert error_code(body) == 101 and "'application_id'" in body["error"]["msg"]
    assert error_code(await env.call("BindScenario", rule_id=rule_id,
                                     scenario_name="a;missing")) == 9002
    assert await _bound(env, rule_id) == []  # nothing bound when one is missing
    assert error_code(await env.call("BindScenario", rule_id=999, scenario_name="a")) == 147
    body = await env.call("BindScenario", rule_id=rule_id, scenario_name="a", bind="maybe")
    assert error_code(body) == 101 and "'bind'" in body["error"]["msg"]


async def test_reorder_scenarios(env: ApiEnv) -> None:
    app_id, ids = await _app_with_scenarios(env, "a", "b", "c")
    rule_id = (await env.ok("AddRule", application_id=app_id, rule_name="r",
                            rule_pattern=".*", scenario_name="a;b;c"))["rule_id"]
    assert await env.ok("ReorderScenarios", rule_id=rule_id,
                        scenario_id=f"{ids['c']};{ids['a']};{ids['b']}") == {"result": 1}
    assert await _bound(env, rule_id) == ["c", "a", "b"]
    await env.ok("ReorderScenarios", rule_name="r", scenario_id=ids["b"])  # rest keep order
    assert await _bound(env, rule_id) == ["b", "c", "a"]
    other = (await env.ok("AddScenario", scenario_name="unbound",
                          scenario_script=""))["scenario_id"]
    assert error_code(await env.call("ReorderScenarios", rule_id=rule_id,
                                     scenario_id=f"{ids['a']};{other}")) == 9002
    assert await _bound(env, rule_id) == ["b", "c", "a"]
    body = await env.call("ReorderScenarios", rule_id=rule_id)
    assert error_code(body) == 101 and "'scenario_id'" in body["error"]["msg"]
    assert error_code(await env.call("ReorderScenarios", rule_id=999,
                                     scenario_id=ids["a"])) == 147


# -- rules ----------------------------------------------------------------------------


async def test_set_rule_info(env: ApiEnv) -> None:
    app_id, _ = await _app_with_scenarios(env)
    rule_id = (await env.ok("AddRule", application_id=app_id, rule_name="r",
                            rule_pattern="1.*", rule_pattern_exclude="19"))["rule_id"]
    await env.ok("AddRule", application_id=app_id, rule_name="other", rule_pattern=".*")
    assert await env.ok("SetRuleInfo", rule_id=rule_id, rule_name="renamed",
                        rule_pattern=r"\+1\d+") == {"result": 1}
    rule = (await env.ok("GetRules", rule_id=rule_id))["result"][0]
    assert (rule["rule_name"], rule["rule_pattern"], rule["rule_pattern_exclude"]) == (
        "renamed", r"\+1\d+", "19")
    await env.ok("SetRuleInfo", rule_id=rule_id, rule_pattern_exclude="")  # clears it
    assert (await env.ok("GetRules", rule_id=rule_id))["result"][0][
        "rule_pattern_exclude"] == ""
    assert error_code(await env.call("SetRuleInfo", rule_id=rule_id,
                                     rule_name="other")) == 9003
    body = await env.call("SetRuleInfo", rule_id=rule_id, rule_pattern="(")
    assert error_code(body) == 101 and "'rule_pattern'" in body["error"]["msg"]
    body = await env.call("SetRuleInfo", rule_id=rule_id, rule_pattern_exclude="[")
    assert error_code(body) == 101 and "'rule_pattern_exclude'" in body["error"]["msg"]
    body = await env.call("SetRuleInfo", rule_name="x")
    assert error_code(body) == 101 and "'rule_id'" in body["error"]["msg"]
    assert error_code(await env.call("SetRuleInfo", rule_id=999, rule_name="x")) == 147


async def test_reorder_rules_changes_inbound_matching(env: ApiEnv) -> None:
    app_id, _ = await _app_with_scenarios(env, "s")
    ids = []
    for name in ("first", "second", "third"):
        ids.append((await env.ok("AddRule", application_id=app_id, rule_name=name,
                                 rule_pattern=".*", scenario_name="s"))["rule_id"])
    assert (await env.store.match_inbound_rule("123")).rule_name == "first"
    assert await env.ok("ReorderRules", rule_id=f"{ids[2]};{ids[0]}") == {"result": 1}
    names = [r["rule_name"] for r in (await env.ok("GetRules"))["result"]]
    assert names == ["third", "first", "second"]
    assert (await env.store.match_inbound_rule("123")).rule_name == "third"
    assert error_code(await env.call("ReorderRules", rule_id=f"{ids[1]};999")) == 147
    assert [r["rule_name"] for r in (await env.ok("GetRules"))["result"]] == names
    body = await env.call("ReorderRules")
    assert error_code(body) == 101 and "'rule_id'" in body["error"]["msg"]
    body = await env.call("ReorderRules", rule_id="1;x")
    assert error_code(body) == 101 and "'rule_id'" in body["error"]["msg"]


# -- StartScenarios -------------------------------------------------------------------


async def test_start_scenarios_by_rule_name_needs_the_application(env: ApiEnv) -> None:
    app_id, _ = await _app_with_scenarios(env, "s")
    await env.ok("AddRule", application_id=app_id, rule_name="r", rule_pattern=".*",
                 scenario_name="s")
    body = await env.call("StartScenarios", rule_name="r")
    assert error_code(body) == 101 and "'application_id'" in body["error"]["msg"]
    await env.ok("StartScenarios", rule_name="r", application_id=app_id)
    await env.ok("StartScenarios", rule_name="r", application_name="app")
    assert error_code(await env.call("StartScenarios", rule_name="r",
                                     application_name="nope")) == 9001
    await env.ok("AddApplication", application_name="empty")
    assert error_code(await env.call("StartScenarios", rule_name="r",
                                     application_name="empty")) == 147
    assert len(env.runner.started) == 2


async def test_start_scenarios_over_the_in_flight_limit_is_429(env: ApiEnv) -> None:
    assert Settings().max_sessions_per_account == 200
    app_id, _ = await _app_with_scenarios(env, "s")
    rule_id = (await env.ok("AddRule", application_id=app_id, rule_name="r",
                            rule_pattern=".*", scenario_name="s"))["rule_id"]
    env.runner.in_flight[1] = 199
    await env.ok("StartScenarios", rule_id=rule_id)  # the 200th
    reply = await env.client.post("/platform_api/StartScenarios/",
                                  data={**ACCOUNT, "rule_id": str(rule_id)})
    assert reply.status_code == 429
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert error_code(body) == TOO_MANY_SESSIONS
    assert body["error"]["msg"] == ("Too many sessions: the account has 200 sessions in "
                                    "flight, the limit is 200")
    assert len(env.runner.started) == 1
    env.runner.in_flight[2] = 500  # another account's sessions do not count
    env.runner.finish(1)
    await env.ok("StartScenarios", rule_id=rule_id)


# -- GetCallHistory -------------------------------------------------------------------


async def test_get_call_history_filters_and_flags(env: ApiEnv) -> None:
    app_id, _ = await _app_with_scenarios(env, "s")
    r1 = (await env.ok("AddRule", application_id=app_id, rule_name="r1", rule_pattern=".*",
                       scenario_name="s"))["rule_id"]
    app2 = (await env.ok("AddApplication", application_name="app2"))["application_id"]
    r2 = (await env.ok("AddRule", application_id=app2, rule_name="r2", rule_pattern=".*",
                       scenario_name="s"))["rule_id"]
    h1 = (await env.ok("StartScenarios", rule_id=r1))["call_session_history_id"]
    h2 = (await env.ok("StartScenarios", rule_id=r2))["call_session_history_id"]
    h3 = (await env.ok("StartScenarios", rule_id=r1))["call_session_history_id"]

    def ids(body: dict) -> list[int]:
        return [item["call_session_history_id"] for item in body["result"]]

    assert ids(await env.ok("GetCallHistory")) == [h1, h2, h3]
    assert ids(await env.ok("GetCallHistory", desc_order="true")) == [h3, h2, h1]
    assert ids(await env.ok("GetCallHistory", application_id=app2)) == [h2]
    assert ids(await env.ok("GetCallHistory", application_name="app")) == [h1, h3]
    assert ids(await env.ok("GetCallHistory", rule_name="r1")) == [h1, h3]
    assert ids(await env.ok("GetCallHistory", call_session_history_id=f"{h3};{h1}")) == [
        h1, h3]
    now = datetime.now(UTC)
    past = now - timedelta(days=2)
    assert ids(await env.ok("GetCallHistory", from_date=past.strftime(DATE_FORMAT),
                            to_date=(past + timedelta(days=1)).strftime(DATE_FORMAT))) == []
    assert ids(await env.ok("GetCallHistory", from_date=past.strftime("%Y-%m-%d"),
                            to_date=(now + timedelta(minutes=1)).strftime(DATE_FORMAT))) == [
        h1, h2, h3]
    body = await env.call("GetCallHistory", from_date=now.strftime(DATE_FORMAT),
                          to_date=past.strftime(DATE_FORMAT))
    assert error_code(body) == 101 and "'from_date'" in body["error"]["msg"]
    assert error_code(await env.call("GetCallHistory", to_date="tomorrow")) == 111

    page = await env.ok("GetCallHistory", count=1, offset=1)
    assert (ids(page), page["count"], page["total_count"]) == ([h2], 1, 3)
    assert "total_count" not in await env.ok("GetCallHistory", with_total_count="false")

    plain = (await env.ok("GetCallHistory", count=1))["result"][0]
    assert not {"calls", "records", "other_resource_usage"} & set(plain)
    full = (await env.ok("GetCallHistory", count=1, with_calls="true", with_records="true",
                         with_other_resources="true"))["result"][0]
    assert (full["calls"], full["records"], full["other_resource_usage"]) == ([], [], [])
