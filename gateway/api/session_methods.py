"""platform_api methods about sessions: StartScenarios and GetCallHistory.

They follow Voximplant's HTTP API methods of the same names. StartScenarios resolves
the rule in the caller's account, checks ``script_custom_data`` against
:func:`custom_data_limit` (Voximplant's 200 bytes by default; our own, larger
``Settings.custom_data_max_bytes`` when ``Settings.custom_data_voximplant_limit`` is off),
checks each scenario against the 256 KiB scenario size limit, refuses with HTTP 429
(error :data:`TOO_MANY_SESSIONS`) when the account already has
``Settings.max_sessions_per_account`` sessions in flight, and hands a
:class:`RuleMatch` to the runtime's ``ScenarioRunner``. GetCallHistory reads the
session CDRs the runtime stored and, with ``with_records``, the recordings of each.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.api.config_methods import application_id_of
from gateway.api.errors import (
    CUSTOM_DATA_TOO_LONG,
    RULE_HAS_NO_SCENARIOS,
    SCENARIO_DOES_NOT_COMPILE,
    SESSION_NOT_STARTED,
    PlatformError,
    invalid_argument,
    missing_argument,
)
from gateway.api.params import Params, format_date
from gateway.api.registry import PAGING_PARAMS, CallContext, ParamDoc, platform_method
from gateway.errors import GatewayError, LimitExceeded, ScenarioError
from gateway.runtime.loader import MAX_SCENARIO_BYTES
from gateway.runtime.records import CallRecord, RecordingRecord, SessionRecord
from gateway.settings import Settings

#: GetCallHistory's window when from_date is not given.
DEFAULT_HISTORY_WINDOW = timedelta(days=30)
#: StartScenarios over ``Settings.max_sessions_per_account`` in flight (HTTP 429); see the
#: code table in :mod:`gateway.api.errors`.
TOO_MANY_SESSIONS = 9099
#: Voximplant's limit on StartScenarios' script_custom_data, bytes.
VOXIMPLANT_CUSTOM_DATA_MAX_BYTES = 200


def custom_data_limit(settings: Settings) -> int:
    """Largest ``script_custom_data`` StartScenarios accepts, in bytes (UTF-8).

    Voximplant's 200 bytes while ``custom_data_voximplant_limit`` is on (the default; a
    lower ``custom_data_max_bytes`` still wins), else ``custom_data_max_bytes`` (4096).
    """
    if settings.custom_data_voximplant_limit:
        return min(VOXIMPLANT_CUSTOM_DATA_MAX_BYTES, settings.custom_data_max_bytes)
    return settings.custom_data_max_bytes


@platform_method("StartScenarios", "Start a session running a rule's scenarios.", [
    ParamDoc("rule_id", "integer", "Rule id."),
    ParamDoc("rule_name", "string", "Rule name (instead of rule_id); needs application_id "
             "or application_name."),
    ParamDoc("application_id", "integer", "Application id, to find rule_name (with rule_id: "
             "the rule must be in it)."),
    ParamDoc("application_name", "string", "Application name (instead of application_id)."),
    ParamDoc("script_custom_data", "string", "Data for VoxEngine.custom_data(), at most "
             "200 bytes in UTF-8 (Voximplant's limit; VGW_CUSTOM_DATA_VOXIMPLANT_LIMIT=false "
             "allows up to VGW_CUSTOM_DATA_MAX_BYTES)."),
])
async def start_scenarios(ctx: CallContext, params: Params) -> dict[str, Any]:
    """StartScenarios -> ``{"result": 1, "media_session_access_url",
    "media_session_access_secure_url", "call_session_history_id"}``.

    Raises:
        PlatformError: 101 without a rule (or rule_name without the application), 147
            for a rule not in the account, 375 for a rule with no scenario, 9005 for
            oversized custom data, 9006 for a scenario over 256 KiB, 9099 with HTTP 429
            when the account already has ``Settings.max_sessions_per_account`` sessions
            in flight.
    """
    rule_id = params.integer("rule_id")
    rule_name = None if rule_id is not None else params.string("rule_name")
    if rule_id is None and rule_name is None:
        raise missing_argument("rule_id", "rule_name")
    custom_data = params.string("script_custom_data", allow_empty=True)
    limit = custom_data_limit(ctx.settings)
    if custom_data is not None:
        size = len(custom_data.encode("utf-8"))
        if size > limit:
            hint = ""
            if limit < ctx.settings.custom_data_max_bytes:
                hint = (f" (Voximplant's limit; VGW_CUSTOM_DATA_VOXIMPLANT_LIMIT=false allows "
                        f"up to {ctx.settings.custom_data_max_bytes} bytes)")
            raise PlatformError(CUSTOM_DATA_TOO_LONG,
                                f"script_custom_data is too long: {size} bytes, the limit is "
                                f"{limit} bytes{hint}")
    app_id = await application_id_of(ctx, params, required=rule_name is not None)
    match = await ctx.store.resolve_rule(ctx.account.account_id, rule_id=rule_id,
                                         rule_name=rule_name, application_id=app_id)
    if not match.scenarios:
        raise PlatformError(RULE_HAS_NO_SCENARIOS,
                            f"Rule has no scenarios: rule_id {match.rule_id} "
                            f"({match.rule_name!r}) has no scenario bound")
    for src in match.scenarios:
        size = len(src.script.encode("utf-8"))
        if size > MAX_SCENARIO_BYTES:
            raise PlatformError(SESSION_NOT_STARTED,
                                f"Session could not be started: scenario {src.name!r} is "
                                f"{size} bytes, the limit is {MAX_SCENARIO_BYTES} bytes "
                                f"(256 KiB)")
    limit = ctx.settings.max_sessions_per_account
    in_flight = ctx.runner.active_sessions(ctx.account.account_id)
    if in_flight >= limit:
        raise PlatformError(TOO_MANY_SESSIONS,
                            f"Too many sessions: the account has {in_flight} sessions in "
                            f"flight, the limit is {limit}", http_status=429)
    try:
        started = await ctx.runner.start_scenarios(match, custom_data)
    except LimitExceeded as exc:
        raise PlatformError(SESSION_NOT_STARTED, f"Session could not be started: {exc}") from exc
    except ScenarioError as exc:
        raise PlatformError(SCENARIO_DOES_NOT_COMPILE, str(exc)) from exc
    except GatewayError as exc:
        raise PlatformError(SESSION_NOT_STARTED, f"Session could not be started: {exc}") from exc
    return {"result": 1,
            "media_session_access_url": started.media_session_access_url,
            "media_session_access_secure_url": started.media_session_access_secure_url,
            "call_session_history_id": started.call_session_history_id}


def _call_item(call: CallRecord) -> dict[str, Any]:
    return {"call_id": call.call_id, "start_time": format_date(call.start_time),
            "end_time": format_date(call.end_time), "duration": call.duration,
            "local_number": call.local_number, "remote_number": call.remote_number,
            "incoming": call.incoming, "successful": call.successful,
            "result_code": call.result_code, "finish_reason": call.finish_reason,
            "direction": call.direction}


def _record_item(rec: RecordingRecord, base_url: str) -> dict[str, Any]:
    """One recording as Voximplant's RecordType: ``duration`` in whole seconds, plus our
    ``duration_ms``, ``call_id`` (call recordings), ``format``, ``channels``, ``sample_rate``.
    """
    item: dict[str, Any] = {
        "record_id": rec.record_id, "record_name": rec.record_name,
        # the URL of the RecordStarted/RecordStopped events; /records/<record_id> serves
        # the same file; both need the account's credentials
        "record_url": f"{base_url}/records/{rec.record_key}",
        "start_time": format_date(rec.start_time), "duration": round(rec.duration),
        "duration_ms": round(rec.duration * 1000), "file_size": rec.file_size, "cost": 0,
        # no billing here: one transaction per record
        "transaction_id": rec.record_id, "transcription_status": "Not required",
        "format": rec.format, "channels": rec.channels, "sample_rate": rec.sample_rate}
    if rec.call_id is not None:
        item["call_id"] = rec.call_id
    return item


def _session_item(record: SessionRecord, with_calls: bool,
                  records: list[RecordingRecord] | None, with_other_resources: bool,
                  base_url: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        # the session log (Logger.write, events, errors), downloadable with the same auth
        "log_file_url": f"{base_url}/logs/{record.session_id}",
        "call_session_history_id": record.call_session_history_id,
        "session_id": record.session_id,
        "account_id": record.account_id,
        "application_id": record.application_id,
        "application_name": record.application_name,
        "rule_id": record.rule_id,
        "rule_name": record.rule_name,
        "start_date": format_date(record.start_date),
        "end_date": format_date(record.end_date),
        "duration": record.duration,
        "finish_reason": record.finish_reason,
        "custom_data": record.custom_data,
        "initiator_address": record.initiator_address,
        # our extension: per-turn Voice AI latency (ms) recorded by the connectors
        "voice_ai_turns": list(record.voice_ai_turns),
    }
    if with_calls:
        item["calls"] = [_call_item(c) for c in record.calls]
    if records is not None:
        # Voximplant's RecordType items: call.record() and VoxEngine.create_recorder()
        item["records"] = [_record_item(r, base_url) for r in records]
    if with_other_resources:
        # Voximplant's ResourceUsageType items (resource_usage_id, resource_type,
        # used_at, ...); the gateway bills no resources.
        item["other_resource_usage"] = []
    return item


@platform_method("GetCallHistory", "Get session CDRs, optionally with their calls.", [
    ParamDoc("from_date", "string", "Sessions started at or after this UTC time, "
             "'YYYY-MM-DD HH:MM:SS' (default: 30 days before to_date)."),
    ParamDoc("to_date", "string", "Sessions started at or before this UTC time "
             "(default: now)."),
    ParamDoc("call_session_history_id", "string", "Session ids, ';'- or ','-separated."),
    ParamDoc("application_id", "integer", "Only this application's sessions."),
    ParamDoc("application_name", "string", "Only this application's sessions."),
    ParamDoc("rule_name", "string", "Only sessions started by a rule of this name."),
    ParamDoc("with_calls", "boolean", "Include each session's calls."),
    ParamDoc("with_records", "boolean", "Include each session's records (RecordType list: "
             "record_id, record_name, record_url, start_time, duration in seconds, "
             "duration_ms, file_size, call_id)."),
    ParamDoc("with_other_resources", "boolean", "Include other_resource_usage "
             "(ResourceUsageType list; always empty)."),
    ParamDoc("desc_order", "boolean", "Newest first."),
    ParamDoc("with_total_count", "boolean", "Report total_count (default true)."),
    *PAGING_PARAMS,
])
async def get_call_history(ctx: CallContext, params: Params) -> dict[str, Any]:
    """GetCallHistory -> ``{"result": [CallSessionInfo...], "count", "total_count",
    "timezone"}``; only the caller's sessions, oldest first unless ``desc_order``.
    """
    to_date = params.date("to_date") or datetime.now(UTC)
    from_date = params.date("from_date") or (to_date - DEFAULT_HISTORY_WINDOW)
    if from_date > to_date:
        raise invalid_argument("from_date", "is after 'to_date'")
    app_id = await application_id_of(ctx, params, required=False)
    with_calls = params.boolean("with_calls")
    offset, count = params.paging()
    page = await ctx.store.get_call_history(
        ctx.account.account_id, from_date=from_date, to_date=to_date,
        call_session_history_ids=params.int_list("call_session_history_id"),
        application_id=app_id, rule_name=params.string("rule_name"), with_calls=with_calls,
        desc_order=params.boolean("desc_order"), offset=offset, count=count)
    records: dict[str, list[RecordingRecord]] | None = None
    if params.boolean("with_records"):
        records = await ctx.store.session_recordings(
            ctx.account.account_id, [r.session_id for r in page.items])
    items = [_session_item(r, with_calls,
                           None if records is None else records.get(r.session_id, []),
                           params.boolean("with_other_resources"),
                           ctx.settings.http_base_url()) for r in page.items]
    reply: dict[str, Any] = {"result": items, "count": len(items)}
    if params.boolean("with_total_count", default=True):
        reply["total_count"] = page.total_count
    reply["timezone"] = "Etc/GMT"
    return reply

