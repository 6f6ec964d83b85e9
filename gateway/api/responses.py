"""Response schemas of the platform_api methods in ``/openapi.json``.

Every reply of Voximplant's HTTP API is HTTP 200 with either ``{"result": ...}`` (plus
method-specific fields such as ``count``/``total_count``) or ``{"error": {"code",
"msg"}}``; StartScenarios answers HTTP 429 with the error body over the in-flight
limit, and the gateway's own failures are HTTP 500 with the error body. Field names
follow Voximplant's types: ApplicationInfoType, ScenarioInfoType, RuleInfoType,
CallSessionInfoType, CallInfoType, RecordInfoType, ResourceUsageType.

:func:`declare_responses` attaches these schemas to the routes of an app built by
``create_app``, so schema-driven clients and fuzzers (schemathesis) can check every
reply. Methods without an entry in :data:`RESULT_SCHEMAS` are documented as "an
object with ``result``".
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

#: ``YYYY-MM-DD HH:MM:SS`` (UTC), Voximplant's date format.
DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"}
NULLABLE_DATE = {"anyOf": [DATE, {"type": "null"}]}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
ONE = {"type": "integer", "const": 1}

ERROR_BODY: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {
        "type": "object",
        "required": ["code", "msg"],
        "additionalProperties": False,
        "properties": {"code": INT, "msg": STR},
    }},
}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None,
         title: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": list(required),
                              "properties": {**required, **(optional or {})}}
    if title:
        schema["title"] = title
    return schema


def _list_reply(item: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return _obj({"result": {"type": "array", "items": item}, "count": INT},
                {"total_count": INT, **(extra or {})})


APPLICATION_INFO = _obj({"application_id": INT, "application_name": STR, "created": DATE,
                         "modified": DATE}, title="ApplicationInfoType")
SCENARIO_INFO = _obj({"scenario_id": INT, "scenario_name": STR, "created": DATE,
                      "modified": DATE}, {"scenario_script": STR}, title="ScenarioInfoType")
RULE_INFO = _obj(
    {"rule_id": INT, "rule_name": STR, "rule_pattern": STR, "rule_pattern_exclude": STR,
     "application_id": INT, "application_name": STR, "created": DATE, "modified": DATE},
    {"scenarios": {"type": "array",
                   "items": _obj({"scenario_id": INT, "scenario_name": STR})}},
    title="RuleInfoType")
CALL_INFO = _obj(
    {"call_id": STR, "start_time": DATE, "end_time": NULLABLE_DATE, "duration": INT,
     "local_number": STR, "remote_number": STR, "incoming": BOOL, "successful": BOOL,
     "result_code": INT, "finish_reason": STR, "direction": STR},
    title="CallInfoType")
RECORD_INFO = _obj({"record_id": INT, "start_time": DATE},
                   {"record_name": STR, "record_url": STR, "duration": INT, "call_id": STR,
                    "file_size": {"type": "number"}, "transcription_url": STR,
                    "transcription_status": STR},
                   title="RecordInfoType")
RESOURCE_USAGE = _obj({"resource_usage_id": INT, "resource_type": STR, "used_at": DATE},
                      {"cost": {"type": "number"}, "description": STR,
                       "resource_quantity": {"type": "number"}, "unit": STR,
                       "ref_call_id": INT, "transaction_id": INT},
                      title="ResourceUsageType")
CALL_SESSION_INFO = _obj(
    {"call_session_history_id": INT, "account_id": INT, "application_id": INT,
     "rule_id": INT, "rule_name": STR, "start_date": DATE, "duration": INT,
     "finish_reason": STR, "initiator_address": STR},
    {"session_id": STR, "application_name": STR, "end_date": NULLABLE_DATE,
     "custom_data": {"type": ["string", "null"]},
     "log_file_url": {"type": ["string", "null"]},
     "calls": {"type": "array", "items": CALL_INFO},
     "records": {"type": "array", "items": RECORD_INFO},
     "other_resource_usage": {"type": "array", "items": RESOURCE_USAGE}},
    title="CallSessionInfoType")

#: Success reply of each method (``{"result": ..., ...}``).
RESULT_SCHEMAS: dict[str, dict[str, Any]] = {
    "AddApplication": _obj({"result": ONE, "application_id": INT, "application_name": STR}),
    "GetApplications": _list_reply(APPLICATION_INFO),
    "SetApplicationInfo": _obj({"result": ONE, "application_name": STR}),
    "DelApplication": _obj({"result": ONE}),
    "AddScenario": _obj({"result": ONE, "scenario_id": INT}),
    "GetScenarios": _list_reply(SCENARIO_INFO),
    "SetScenarioInfo": _obj({"result": ONE}),
    "DelScenario": _obj({"result": ONE}),
    "BindScenario": _obj({"result": ONE}),
    "ReorderScenarios": _obj({"result": ONE}),
    "AddRule": _obj({"result": ONE, "rule_id": INT}),
    "GetRules": _list_reply(RULE_INFO),
    "SetRuleInfo": _obj({"result": ONE}),
    "ReorderRules": _obj({"result": ONE}),
    "DelRule": _obj({"result": ONE}),
    "StartScenarios": _obj({"result": ONE, "media_session_access_url": STR,
                            "media_session_access_secure_url": STR,
                            "call_session_history_id": INT}),
    "GetCallHistory": _list_reply(CALL_SESSION_INFO, {"timezone": STR}),
}

#: Reply of a method with no entry in :data:`RESULT_SCHEMAS`.
GENERIC_RESULT: dict[str, Any] = {"type": "object", "required": ["result"]}

#: Methods that may answer HTTP 429 with the error body.
RATE_LIMITED = frozenset({"StartScenarios"})


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def openapi_responses(method: str | None) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of one method's route (``None``: the ``cmd`` route, any method)."""
    if method is None:
        ok: dict[str, Any] = {"anyOf": [*RESULT_SCHEMAS.values(), GENERIC_RESULT, ERROR_BODY]}
        limited = True
    else:
        ok = {"anyOf": [RESULT_SCHEMAS.get(method, GENERIC_RESULT), ERROR_BODY]}
        limited = method in RATE_LIMITED
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": 'Result `{"result": ...}` or error `{"error": {"code", "msg"}}` '
                             "(codes in gateway.api.errors).", "content": _json(ok)},
        500: {"description": "Internal error (code 2).", "content": _json(ERROR_BODY)},
    }
    if limited:
        responses[429] = {"description": "Too many sessions in flight for the account "
                                         "(code 9099).", "content": _json(ERROR_BODY)}
    return responses


def declare_responses(app: FastAPI) -> None:
    """Attach the response schemas to the app's platform_api routes (idempotent).

    Routes are recognised by their operation ids: ``platform_api`` (the ``cmd`` route)
    and ``platform_api_<Method>``. Call before ``/openapi.json`` is first served.
    """
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        op_id = route.operation_id or ""
        if op_id == "platform_api":
            route.responses = openapi_responses(None)
        elif op_id.startswith("platform_api_"):
            route.responses = openapi_responses(op_id.removeprefix("platform_api_"))
    app.openapi_schema = None
