"""Tenant isolation: account A tries every platform_api method on account B's objects.

:data:`CROSS` holds, for every method in the registry (``gateway.api.registry.METHODS``),
the calls A makes with B's ids and names and what A must get back: an error naming
the object as unknown, an empty list, or success that stays inside A. A test fails
when a registered method has no entry, so a new method cannot be added without its
isolation check. After all calls, B's applications, scenarios, rules (with bound
scenarios in order), sessions, keys and secrets must be exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.api.registry import METHODS
from tests.integration.api_support import (
    ACCOUNT,
    OTHER_ACCOUNT,
    ApiEnv,
    env,  # noqa: F401 (fixture)
    error_code,
)

Ids = dict[str, Any]
#: ``(body, A's ids, B's ids) -> None``; asserts on A's reply.
Check = Callable[[dict[str, Any], Ids, Ids], None]

INVALID_APPLICATION, INVALID_SCENARIO, INVALID_RULE = 9001, 9002, 147


def refused(*codes: int) -> Check:
    """An error reply; with ``codes``, one of them (else any code but internal error 2)."""
    def check(body: dict[str, Any], a: Ids, b: Ids) -> None:
        code = error_code(body)
        assert code in codes if codes else code != 2, body
    return check


def empty(body: dict[str, Any], a: Ids, b: Ids) -> None:
    """A list reply with nothing in it."""
    assert "error" not in body, body
    assert body["result"] == [] and body.get("total_count", 0) == 0, body


def none_of_b(key: str, b_key: str) -> Check:
    """A list reply whose items' ``key`` never holds one of B's ``b_key`` values."""
    def check(body: dict[str, Any], a: Ids, b: Ids) -> None:
        assert "error" not in body, body
        seen = {item[key] for item in body["result"]}
        assert seen and not seen & set(b[b_key]), (seen, b[b_key])
    return check


def succeeds(body: dict[str, Any], a: Ids, b: Ids) -> None:
    """Success (the effect is checked on B's snapshot afterwards)."""
    assert "error" not in body, body


@dataclass(frozen=True)
class Cross:
    """One call of A's: ``params(A's ids, B's ids)`` and the :data:`Check` of the reply."""

    params: Callable[[Ids, Ids], dict[str, Any]]
    check: Check


#: Every registered method -> A's calls across the boundary.
CROSS: dict[str, list[Cross]] = {
    # applications
    "AddApplication": [Cross(lambda a, b: {"application_name": "b-only"}, succeeds)],
    "GetApplications": [
        Cross(lambda a, b: {"application_id": b["app"]}, empty),
        Cross(lambda a, b: {"application_name": "b-app"}, empty),
        Cross(lambda a, b: {}, none_of_b("application_id", "apps")),
    ],
    "SetApplicationInfo": [
        Cross(lambda a, b: {"application_id": b["app"], "application_name": "stolen"},
              refused(INVALID_APPLICATION)),
        Cross(lambda a, b: {"required_application_name": "b-app",
                            "application_name": "stolen"}, refused(INVALID_APPLICATION)),
    ],
    "DelApplication": [
        Cross(lambda a, b: {"application_id": b["app"]}, refused(INVALID_APPLICATION)),
        Cross(lambda a, b: {"application_name": "b-app"}, refused(INVALID_APPLICATION)),
    ],
    # scenarios
    "AddScenario": [Cross(lambda a, b: {"scenario_name": "b-scenario",
                                        "scenario_script": "STOLEN = 1"}, succeeds)],
    "GetScenarios": [
        Cross(lambda a, b: {"scenario_id": b["scenario"], "with_script": "true"}, empty),
        Cross(lambda a, b: {"scenario_name": "b-scenario2"}, empty),
        Cross(lambda a, b: {}, none_of_b("scenario_id", "scenarios")),
    ],
    "SetScenarioInfo": [
        Cross(lambda a, b: {"scenario_id": b["scenario"], "scenario_script": "STOLEN = 1"},
              refused(INVALID_SCENARIO)),
        Cross(lambda a, b: {"required_scenario_name": "b-scenario2", "scenario_name": "x"},
              refused(INVALID_SCENARIO)),
    ],
    "DelScenario": [
        Cross(lambda a, b: {"scenario_id": b["scenario"]}, refused(INVALID_SCENARIO)),
        Cross(lambda a, b: {"scenario_name": "b-scenario2"}, refused(INVALID_SCENARIO)),
    ],
    "BindScenario": [
        Cross(lambda a, b: {"rule_id": b["rule"], "scenario_id": a["scenario"]},
              refused(INVALID_RULE)),
        Cross(lambda a, b: {"rule_id": a["rule"], "scenario_id": b["scenario"]},
              refused(INVALID_SCENARIO)),
        Cross(lambda a, b: {"rule_id": b["rule"], "scenario_id": b["scenario"],
                            "bind": "false"}, refused(INVALID_RULE)),
        Cross(lambda a, b: {"rule_name": "b-rule", "application_id": b["app"],
                            "scenario_id": "all"}, refused(INVALID_APPLICATION)),
    ],
    "ReorderScenarios": [
        Cross(lambda a, b: {"rule_id": b["rule"], "scenario_id": b["scenario"]},
              refused(INVALID_RULE)),
        Cross(lambda a, b: {"rule_name": "b-rule", "scenario_id": b["scenario"]},
              refused(INVALID_RULE)),
        Cross(lambda a, b: {"rule_id": a["rule"], "scenario_id": b["scenario"]},
              refused(INVALID_SCENARIO)),
    ],
    # rules
    "AddRule": [
        Cross(lambda a, b: {"application_id": b["app"], "rule_name": "x",
                            "rule_pattern": ".*"}, refused(INVALID_APPLICATION)),
        Cross(lambda a, b: {"application_id": a["app"], "rule_name": "x",
                            "rule_pattern": ".*", "scenario_id": b["scenario"]},
              refused(INVALID_SCENARIO)),
    ],
    "GetRules": [
        Cross(lambda a, b: {"rule_id": b["rule"]}, empty),
        Cross(lambda a, b: {"rule_name": "b-rule"}, empty),
        Cross(lambda a, b: {"application_id": b["app"]}, refused(INVALID_APPLICATION)),
        Cross(lambda a, b: {}, none_of_b("rule_id", "rules")),
    ],
    "SetRuleInfo": [Cross(lambda a, b: {"rule_id": b["rule"], "rule_pattern": "stolen"},
                          refused(INVALID_RULE))],
    "ReorderRules": [
        Cross(lambda a, b: {"rule_id": b["rule"]}, refused(INVALID_RULE)),
        Cross(lambda a, b: {"rule_id": f"{a['rule']};{b['rule']}"}, refused(INVALID_RULE)),
    ],
    "DelRule": [
        Cross(lambda a, b: {"rule_id": b["rule"]}, refused(INVALID_RULE)),
        Cross(lambda a, b: {"rule_name": "b-rule", "application_id": b["app"]},
              refused(INVALID_APPLICATION)),
    ],
    # sessions
    "StartScenarios": [
        Cross(lambda a, b: {"rule_id": b["rule"]}, refused(INVALID_RULE)),
        Cross(lambda a, b: {"rule_id": b["rule"], "application_id": a["app"]},
              refused(INVALID_RULE)),
        Cross(lambda a, b: {"rule_name": "b-rule", "application_id": b["app"]},
              refused(INVALID_APPLICATION)),
        Cross(lambda a, b: {"rule_name": "b-rule", "application_id": a["app"]},
              refused(INVALID_RULE)),
    ],
    "GetCallHistory": [
        Cross(lambda a, b: {"call_session_history_id": b["history"]}, empty),
        Cross(lambda a, b: {"rule_name": "b-rule"}, empty),
        Cross(lambda a, b: {"application_id": b["app"]}, refused(INVALID_APPLICATION)),
        Cross(lambda a, b: {"with_calls": "true"},
              none_of_b("call_session_history_id", "histories")),
    ],
    # service-account keys (the roles list is the gateway's, shared by every account)
    "CreateKey": [Cross(lambda a, b: {"description": "b-key", "role_name": "Owner"},
                        succeeds)],
    "GetKeys": [
        Cross(lambda a, b: {"key_id": b["key"]}, empty),
        Cross(lambda a, b: {}, none_of_b("key_id", "keys")),
    ],
    "UpdateKey": [Cross(lambda a, b: {"key_id": b["key"], "description": "stolen"},
                        refused())],
    "DeleteKey": [Cross(lambda a, b: {"key_id": b["key"]}, refused())],
    "SetKeyRoles": [Cross(lambda a, b: {"key_id": b["key"], "role_name": "Owner"},
                          refused())],
    "RemoveKeyRoles": [Cross(lambda a, b: {"key_id": b["key"], "role_name": "Viewer"},
                             refused())],
    "GetKeyRoles": [Cross(lambda a, b: {"key_id": b["key"]}, refused())],
    "GetRoles": [Cross(lambda a, b: {}, succeeds)],
    # secrets
    "AddSecret": [Cross(lambda a, b: {"secret_name": "B_TOKEN", "secret_value": "a-value"},
                        succeeds)],
    "GetSecrets": [
        Cross(lambda a, b: {"secret_name_part": "B_ONLY"}, empty),
        Cross(lambda a, b: {"application_id": b["app"]}, refused()),
        Cross(lambda a, b: {}, none_of_b("secret_id", "secrets")),
    ],
    "SetSecretInfo": [
        Cross(lambda a, b: {"secret_id": b["secret"], "secret_value": "stolen"}, refused()),
        Cross(lambda a, b: {"secret_name": "B_ONLY", "secret_value": "stolen"}, refused()),
    ],
    "DelSecret": [
        Cross(lambda a, b: {"secret_id": b["secret"]}, refused()),
        Cross(lambda a, b: {"secret_name": "B_ONLY"}, refused()),
    ],
}


def test_every_registered_method_has_an_isolation_check() -> None:
    missing = sorted(set(METHODS) - set(CROSS))
    assert not missing, f"add cross-account calls to CROSS for: {missing}"
    for name, crossings in CROSS.items():
        assert crossings, f"CROSS[{name!r}] is empty"


async def _populate(env: ApiEnv, auth: dict[str, str], prefix: str) -> Ids:
    """An application, two scenarios, a rule, a session, a key and a secret."""
    ids: Ids = {}
    ids["app"] = (await env.ok("AddApplication", auth,
                               application_name=f"{prefix}-app"))["application_id"]
    ids["scenario"] = (await env.ok("AddScenario", auth, scenario_name=f"{prefix}-scenario",
                                    scenario_script="A = 1"))["scenario_id"]
    second = (await env.ok("AddScenario", auth, scenario_name=f"{prefix}-scenario2",
                           scenario_script="B = 2"))["scenario_id"]
    ids["rule"] = (await env.ok("AddRule", auth, application_id=ids["app"],
                                rule_name=f"{prefix}-rule", rule_pattern=".*",
                                scenario_id=f"{second};{ids['scenario']}"))["rule_id"]
    ids["history"] = (await env.ok("StartScenarios", auth, rule_id=ids["rule"],
                                   script_custom_data=prefix))["call_session_history_id"]
    ids["apps"], ids["scenarios"], ids["rules"] = (
        [ids["app"]], [ids["scenario"], second], [ids["rule"]])
    ids["histories"] = [ids["history"]]
    if "CreateKey" in METHODS:
        ids["key"] = (await env.ok("CreateKey", auth, description=f"{prefix}-key",
                                   role_name="Owner"))["result"]["key_id"]
        ids["keys"] = [ids["key"]]
    if "AddSecret" in METHODS:
        ids["secret"] = (await env.ok("AddSecret", auth, secret_name=f"{prefix.upper()}_ONLY",
                                      secret_value=f"{prefix}-value"))["result"]["secret_id"]
        ids["secrets"] = [ids["secret"]]
    return ids


async def _snapshot(env: ApiEnv, auth: dict[str, str]) -> dict[str, Any]:
    """Everything an account can read about itself."""
    snap = {
        "apps": await env.ok("GetApplications", auth),
        "scenarios": await env.ok("GetScenarios", auth, with_script="true"),
        "rules": await env.ok("GetRules", auth, with_scenarios="true"),
        "history": await env.ok("GetCallHistory", auth, with_calls="true"),
    }
    if "GetKeys" in METHODS:
        snap["keys"] = await env.ok("GetKeys", auth, with_roles="true")
    if "GetSecrets" in METHODS:
        snap["secrets"] = await env.ok("GetSecrets", auth)
    secret_values = getattr(env.store, "secret_values", None)
    if secret_values is not None:
        snap["secret_values"] = await secret_values(int(auth["account_id"]))
    return snap


async def test_account_a_cannot_touch_account_b(env: ApiEnv) -> None:
    a = await _populate(env, ACCOUNT, "a")
    b = await _populate(env, OTHER_ACCOUNT, "b")
    before = await _snapshot(env, OTHER_ACCOUNT)
    b_sessions = [m for m, _ in env.runner.started if m.account_id == 2]

    tried = set()
    for name in METHODS:
        for n, cross in enumerate(CROSS.get(name, [])):
            params = cross.params(a, b)
            body = await env.call(name, ACCOUNT, **params)
            try:
                cross.check(body, a, b)
            except AssertionError as exc:
                raise AssertionError(f"{name} #{n} {params}: {exc}") from exc
            tried.add(name)

    assert tried == set(METHODS)
    assert await _snapshot(env, OTHER_ACCOUNT) == before
    assert [m for m, _ in env.runner.started if m.account_id == 2] == b_sessions
    assert all(m.account_id == 1 for m, _ in env.runner.started[len(b_sessions) + 1:])


async def test_sessions_of_b_are_not_in_a_history_nor_counted_for_a(env: ApiEnv) -> None:
    a = await _populate(env, ACCOUNT, "a")
    b = await _populate(env, OTHER_ACCOUNT, "b")
    history = await env.ok("GetCallHistory", ACCOUNT, with_calls="true", with_records="true",
                           with_other_resources="true", count=1000)
    assert [item["call_session_history_id"] for item in history["result"]] == [a["history"]]
    assert all(item["account_id"] == 1 for item in history["result"])
    other = await env.ok("GetCallHistory", OTHER_ACCOUNT,
                         call_session_history_id=f"{a['history']};{b['history']}")
    assert [item["call_session_history_id"] for item in other["result"]] == [b["history"]]
    # B's load does not use A's StartScenarios budget
    env.runner.in_flight[2] = 10_000
    await env.ok("StartScenarios", ACCOUNT, rule_id=a["rule"])
