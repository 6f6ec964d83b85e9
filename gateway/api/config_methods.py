"""platform_api methods that manage applications, scenarios and rules.

Names, parameters and replies follow Voximplant's HTTP API: AddApplication,
GetApplications, SetApplicationInfo, DelApplication, AddScenario, GetScenarios,
SetScenarioInfo, DelScenario, BindScenario, ReorderScenarios, AddRule, GetRules,
SetRuleInfo, ReorderRules, DelRule. Differences: application names are kept as
given (no ``.account.voximplant.com`` suffix); scenarios are Python and must compile;
rule patterns are Python regular expressions matched in full.
"""

from __future__ import annotations

from typing import Any

from gateway.api.errors import missing_argument
from gateway.api.params import Params, format_date
from gateway.api.registry import (
    PAGING_PARAMS,
    CallContext,
    ParamDoc,
    platform_method,
)
from gateway.api.validation import check_regex, check_scenario_compiles
from gateway.store import ApplicationInfo, RuleInfo, ScenarioInfo

NAME_MAX = 200
PATTERN_MAX = 1000

_APP_REF = [
    ParamDoc("application_id", "integer", "Application id."),
    ParamDoc("application_name", "string", "Application name (instead of application_id)."),
]


async def application_id_of(ctx: CallContext, params: Params, *,
                            required: bool) -> int | None:
    """The application named by ``application_id`` or ``application_name`` (checked to exist).

    Raises:
        PlatformError: 101 if required and neither is given; 9001 if it does not exist.
    """
    app_id = params.integer("application_id")
    app_name = params.string("application_name")
    if app_id is None and app_name is None:
        if required:
            raise missing_argument("application_id", "application_name")
        return None
    app = await ctx.store.get_application(ctx.account.account_id, application_id=app_id,
                                          application_name=app_name)
    return app.application_id


def _application_item(app: ApplicationInfo) -> dict[str, Any]:
    return {"application_id": app.application_id, "application_name": app.application_name,
            "created": format_date(app.created), "modified": format_date(app.modified)}


def _scenario_item(sc: ScenarioInfo) -> dict[str, Any]:
    item: dict[str, Any] = {"scenario_id": sc.scenario_id, "scenario_name": sc.scenario_name,
                            "created": format_date(sc.created),
                            "modified": format_date(sc.modified)}
    if sc.scenario_script is not None:
        item["scenario_script"] = sc.scenario_script
    return item


def _rule_item(rule: RuleInfo, with_scenarios: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "rule_id": rule.rule_id, "rule_name": rule.rule_name,
        "rule_pattern": rule.rule_pattern, "rule_pattern_exclude": rule.rule_pattern_exclude,
        "application_id": rule.application_id, "application_name": rule.application_name,
        "created": format_date(rule.created), "modified": format_date(rule.modified),
    }
    if with_scenarios:
        item["scenarios"] = [{"scenario_id": s.scenario_id, "scenario_name": s.scenario_name}
                             for s in rule.scenarios]
    return item


# -- applications ---------------------------------------------------------------------


@platform_method("AddApplication", "Add a new application.", [
    ParamDoc("application_name", "string", "Application name, unique in the account; kept "
             "as given.", required=True),
])
async def add_application(ctx: CallContext, params: Params) -> dict[str, Any]:
    """AddApplication -> ``{"result": 1, "application_id", "application_name"}``."""
    name = params.string("application_name", required=True, max_length=NAME_MAX)
    assert name is not None
    app = await ctx.store.add_application(ctx.account.account_id, name)
    return {"result": 1, "application_id": app.application_id,
            "application_name": app.application_name}


@platform_method("GetApplications", "Get the account's applications.", [
    *_APP_REF, *PAGING_PARAMS,
])
async def get_applications(ctx: CallContext, params: Params) -> dict[str, Any]:
    """GetApplications -> ``{"result": [ApplicationInfo...], "count", "total_count"}``."""
    offset, count = params.paging()
    page = await ctx.store.get_applications(
        ctx.account.account_id, application_id=params.integer("application_id"),
        application_name=params.string("application_name"), offset=offset, count=count)
    items = [_application_item(a) for a in page.items]
    return {"result": items, "count": len(items), "total_count": page.total_count}


@platform_method("SetApplicationInfo", "Rename an application.", [
    ParamDoc("application_id", "integer", "Application id."),
    ParamDoc("required_application_name", "string",
             "Application name (instead of application_id)."),
    ParamDoc("application_name", "string", "New application name, unique in the account."),
])
async def set_application_info(ctx: CallContext, params: Params) -> dict[str, Any]:
    """SetApplicationInfo -> ``{"result": 1, "application_name"}`` (the name now in effect).

    As in Voximplant, ``required_application_name`` selects the application by name and
    ``application_name`` is the new name.
    """
    app_id = params.integer("application_id")
    selector = params.string("required_application_name")
    if app_id is None and selector is None:
        raise missing_argument("application_id", "required_application_name")
    new_name = params.string("application_name", max_length=NAME_MAX)
    app = await ctx.store.set_application_info(ctx.account.account_id, application_id=app_id,
                                               application_name=selector, new_name=new_name)
    return {"result": 1, "application_name": app.application_name}


@platform_method("DelApplication", "Delete applications with their rules.", [
    ParamDoc("application_id", "string", "Application ids, ';'-separated."),
    ParamDoc("application_name", "string", "Application names, ';'-separated."),
])
async def del_application(ctx: CallContext, params: Params) -> dict[str, Any]:
    """DelApplication -> ``{"result": 1}``."""
    ids = params.int_list("application_id")
    names = params.str_list("application_name")
    if not ids and not names:
        raise missing_argument("application_id", "application_name")
    await ctx.store.del_applications(ctx.account.account_id, application_ids=ids or (),
                                     application_names=names or ())
    return {"result": 1}


# -- scenarios ------------------------------------------------------------------------


@platform_method("AddScenario", "Add a scenario (Python source); it must compile.", [
    ParamDoc("scenario_name", "string", "Scenario name, unique in the account.",
             required=True),
    ParamDoc("scenario_script", "string", "Python source of the scenario.", required=True),
    ParamDoc("rewrite", "boolean", "Replace the script of an existing scenario of that name."),
])
async def add_scenario(ctx: CallContext, params: Params) -> dict[str, Any]:
    """AddScenario -> ``{"result": 1, "scenario_id"}``."""
    name = params.string("scenario_name", required=True, max_length=NAME_MAX)
    script = params.string("scenario_script", allow_empty=True)
    if script is None:
        raise missing_argument("scenario_script")
    assert name is not None
    check_scenario_compiles(script, name)
    sc = await ctx.store.add_scenario(ctx.account.account_id, name, script,
                                      rewrite=params.boolean("rewrite"))
    return {"result": 1, "scenario_id": sc.scenario_id}


@platform_method("GetScenarios", "Get the account's scenarios.", [
    ParamDoc("scenario_id", "integer", "Scenario id."),
    ParamDoc("scenario_name", "string", "Scenario name."),
    ParamDoc("with_script", "boolean", "Include scenario_script."),
    *PAGING_PARAMS,
])
async def get_scenarios(ctx: CallContext, params: Params) -> dict[str, Any]:
    """GetScenarios -> ``{"result": [ScenarioInfo...], "count", "total_count"}``."""
    offset, count = params.paging()
    page = await ctx.store.get_scenarios(
        ctx.account.account_id, scenario_id=params.integer("scenario_id"),
        scenario_name=params.string("scenario_name"), with_script=params.boolean("with_script"),
        offset=offset, count=count)
    items = [_scenario_item(s) for s in page.items]
    return {"result": items, "count": len(items), "total_count": page.total_count}


@platform_method("SetScenarioInfo", "Rename a scenario and/or replace its script.", [
    ParamDoc("scenario_id", "integer", "Scenario id."),
    ParamDoc("required_scenario_name", "string", "Scenario name (instead of scenario_id)."),
    ParamDoc("scenario_name", "string", "New scenario name."),
    ParamDoc("scenario_script", "string", "New Python source; it must compile."),
])
async def set_scenario_info(ctx: CallContext, params: Params) -> dict[str, Any]:
    """SetScenarioInfo -> ``{"result": 1}``.

    As in Voximplant, ``required_scenario_name`` selects the scenario by name and
    ``scenario_name`` is the new name; with no ``scenario_id`` nor
    ``required_scenario_name``, ``scenario_name`` selects the scenario.
    """
    scenario_id = params.integer("scenario_id")
    selector = params.string("required_scenario_name")
    new_name = params.string("scenario_name", max_length=NAME_MAX)
    if scenario_id is None and selector is None:
        if new_name is None:
            raise missing_argument("scenario_id", "required_scenario_name")
        selector, new_name = new_name, None
    script = params.string("scenario_script", allow_empty=True)
    if script is not None:
        check_scenario_compiles(script, new_name or selector or str(scenario_id))
    await ctx.store.set_scenario_info(ctx.account.account_id, scenario_id=scenario_id,
                                      scenario_name=selector, new_name=new_name,
                                      scenario_script=script)
    return {"result": 1}


@platform_method("DelScenario", "Delete scenarios (they are unbound from their rules).", [
    ParamDoc("scenario_id", "string", "Scenario ids, ';'- or ','-separated, or 'all'."),
    ParamDoc("scenario_name", "string", "Scenario names, ';'- or ','-separated."),
])
async def del_scenario(ctx: CallContext, params: Params) -> dict[str, Any]:
    """DelScenario -> ``{"result": 1}``."""
    delete_all = params.is_all("scenario_id")
    ids = None if delete_all else params.int_list("scenario_id")
    names = params.str_list("scenario_name")
    if not delete_all and not ids and not names:
        raise missing_argument("scenario_id", "scenario_name")
    await ctx.store.del_scenarios(ctx.account.account_id, scenario_ids=ids or (),
                                  scenario_names=names or (), delete_all=delete_all)
    return {"result": 1}


async def _rule_ref(ctx: CallContext, params: Params, *,
                    require_app_for_name: bool) -> tuple[int | None, str | None, int | None]:
    """``(rule_id, rule_name, application_id)`` naming one rule of the caller's account.

    Raises:
        PlatformError: 101 when neither ``rule_id`` nor ``rule_name`` is given, or
            ``rule_name`` comes without the application and ``require_app_for_name``.
    """
    rule_id = params.integer("rule_id")
    rule_name = None if rule_id is not None else params.string("rule_name")
    if rule_id is None and rule_name is None:
        raise missing_argument("rule_id", "rule_name")
    app_id = await application_id_of(ctx, params,
                                     required=rule_name is not None and require_app_for_name)
    return rule_id, rule_name, app_id


@platform_method("BindScenario", "Bind scenarios to a rule (appended in the order given), "
                 "or unbind them with bind=false.", [
    ParamDoc("scenario_id", "string", "Scenario ids, ';'- or ','-separated, or 'all'."),
    ParamDoc("scenario_name", "string", "Scenario names, ';'- or ','-separated."),
    ParamDoc("rule_id", "integer", "Rule id."),
    ParamDoc("rule_name", "string", "Rule name (instead of rule_id); needs the application."),
    *_APP_REF,
    ParamDoc("bind", "boolean", "true (default) binds, false unbinds."),
])
async def bind_scenario(ctx: CallContext, params: Params) -> dict[str, Any]:
    """BindScenario -> ``{"result": 1}``.

    Binding appends the scenarios not yet bound after the rule's current ones (ids
    first, then names); unbinding ignores scenarios that are not bound. ``all`` means
    every scenario of the account (bind) or of the rule (unbind).
    """
    rule_id, rule_name, app_id = await _rule_ref(ctx, params, require_app_for_name=True)
    all_scenarios = params.is_all("scenario_id")
    ids = None if all_scenarios else params.int_list("scenario_id")
    names = params.str_list("scenario_name")
    if not all_scenarios and not ids and not names:
        raise missing_argument("scenario_id", "scenario_name")
    await ctx.store.bind_scenarios(
        ctx.account.account_id, rule_id=rule_id, rule_name=rule_name, application_id=app_id,
        scenario_ids=ids or (), scenario_names=names or (), all_scenarios=all_scenarios,
        bind=params.boolean("bind", default=True))
    return {"result": 1}


@platform_method("ReorderScenarios", "Set the order in which a rule's scenarios run.", [
    ParamDoc("rule_id", "integer", "Rule id."),
    ParamDoc("rule_name", "string", "Rule name (instead of rule_id); the first rule of that "
             "name in rule order unless the application is given."),
    *_APP_REF,
    ParamDoc("scenario_id", "string", "Bound scenario ids, ';'- or ','-separated, in the new "
             "order (scenarios not listed follow in their old order).", required=True),
])
async def reorder_scenarios(ctx: CallContext, params: Params) -> dict[str, Any]:
    """ReorderScenarios -> ``{"result": 1}``; a scenario not bound to the rule is error 9002."""
    rule_id, rule_name, app_id = await _rule_ref(ctx, params, require_app_for_name=False)
    ids = params.int_list("scenario_id")
    if not ids:
        raise missing_argument("scenario_id")
    await ctx.store.reorder_scenarios(ctx.account.account_id, rule_id=rule_id,
                                      rule_name=rule_name, application_id=app_id,
                                      scenario_ids=ids)
    return {"result": 1}


# -- rules ----------------------------------------------------------------------------


@platform_method("AddRule", "Add a routing rule to an application.", [
    *_APP_REF,
    ParamDoc("rule_name", "string", "Rule name, unique in the application.", required=True),
    ParamDoc("rule_pattern", "string", "Python regular expression matched in full against "
             "the called number / SIP user.", required=True),
    ParamDoc("rule_pattern_exclude", "string", "Numbers that fully match this are excluded."),
    ParamDoc("scenario_id", "string", "Scenario ids, ';'- or ','-separated, run in order."),
    ParamDoc("scenario_name", "string", "Scenario names, ';'- or ','-separated (after ids)."),
])
async def add_rule(ctx: CallContext, params: Params) -> dict[str, Any]:
    """AddRule -> ``{"result": 1, "rule_id"}``."""
    app_id = await application_id_of(ctx, params, required=True)
    assert app_id is not None
    rule_name = params.string("rule_name", required=True, max_length=NAME_MAX)
    pattern = params.string("rule_pattern", required=True, max_length=PATTERN_MAX)
    exclude = params.string("rule_pattern_exclude", max_length=PATTERN_MAX) or ""
    assert rule_name is not None and pattern is not None
    check_regex(pattern, "rule_pattern")
    if exclude:
        check_regex(exclude, "rule_pattern_exclude")
    rule = await ctx.store.add_rule(
        ctx.account.account_id, application_id=app_id, rule_name=rule_name,
        rule_pattern=pattern, rule_pattern_exclude=exclude,
        scenario_ids=params.int_list("scenario_id") or (),
        scenario_names=params.str_list("scenario_name") or ())
    return {"result": 1, "rule_id": rule.rule_id}


@platform_method("GetRules", "Get routing rules, in the order they are tried.", [
    *_APP_REF,
    ParamDoc("rule_id", "integer", "Rule id."),
    ParamDoc("rule_name", "string", "Rule name."),
    ParamDoc("with_scenarios", "boolean", "Include each rule's ordered scenarios."),
    *PAGING_PARAMS,
])
async def get_rules(ctx: CallContext, params: Params) -> dict[str, Any]:
    """GetRules -> ``{"result": [RuleInfo...], "count", "total_count"}``."""
    app_id = await application_id_of(ctx, params, required=False)
    offset, count = params.paging()
    page = await ctx.store.get_rules(ctx.account.account_id, application_id=app_id,
                                     rule_id=params.integer("rule_id"),
                                     rule_name=params.string("rule_name"),
                                     offset=offset, count=count)
    with_scenarios = params.boolean("with_scenarios")
    items = [_rule_item(r, with_scenarios) for r in page.items]
    return {"result": items, "count": len(items), "total_count": page.total_count}


@platform_method("SetRuleInfo", "Rename a rule and/or change its patterns.", [
    ParamDoc("rule_id", "integer", "Rule id.", required=True),
    ParamDoc("rule_name", "string", "New rule name, unique in the application."),
    ParamDoc("rule_pattern", "string", "New pattern (Python regular expression, matched in "
             "full)."),
    ParamDoc("rule_pattern_exclude", "string", "New exclude pattern; an empty value clears it."),
])
async def set_rule_info(ctx: CallContext, params: Params) -> dict[str, Any]:
    """SetRuleInfo -> ``{"result": 1}``."""
    rule_id = params.integer("rule_id", required=True)
    assert rule_id is not None
    new_name = params.string("rule_name", max_length=NAME_MAX)
    pattern = params.string("rule_pattern", max_length=PATTERN_MAX)
    exclude = params.string("rule_pattern_exclude", max_length=PATTERN_MAX, allow_empty=True)
    if pattern is not None:
        check_regex(pattern, "rule_pattern")
    if exclude:
        check_regex(exclude, "rule_pattern_exclude")
    await ctx.store.set_rule_info(ctx.account.account_id, rule_id=rule_id, new_name=new_name,
                                  rule_pattern=pattern, rule_pattern_exclude=exclude)
    return {"result": 1}


@platform_method("ReorderRules", "Set the order in which an application's rules are tried.", [
    ParamDoc("rule_id", "string", "Rule ids of one application, ';'- or ','-separated, in the "
             "new order (rules not listed follow in their old order).", required=True),
])
async def reorder_rules(ctx: CallContext, params: Params) -> dict[str, Any]:
    """ReorderRules -> ``{"result": 1}``.

    Voximplant expects the rules of one application; rules of several applications
    are reordered within each application.
    """
    ids = params.int_list("rule_id")
    if not ids:
        raise missing_argument("rule_id")
    await ctx.store.reorder_rules(ctx.account.account_id, ids)
    return {"result": 1}


@platform_method("DelRule", "Delete routing rules.", [
    ParamDoc("rule_id", "string", "Rule ids, ';'- or ','-separated, or 'all'."),
    ParamDoc("rule_name", "string", "Rule names, ';'- or ','-separated."),
    *_APP_REF,
])
async def del_rule(ctx: CallContext, params: Params) -> dict[str, Any]:
    """DelRule -> ``{"result": 1}``; by name or ``all`` it is limited to the application given."""
    app_id = await application_id_of(ctx, params, required=False)
    delete_all = params.is_all("rule_id")
    ids = None if delete_all else params.int_list("rule_id")
    names = params.str_list("rule_name")
    if not delete_all and not ids and not names:
        raise missing_argument("rule_id", "rule_name")
    if (delete_all or names) and app_id is None:
        raise missing_argument("application_id", "application_name")
    await ctx.store.del_rules(ctx.account.account_id, application_id=app_id,
                              rule_ids=ids or (), rule_names=names or (),
                              delete_all=delete_all)
    return {"result": 1}
