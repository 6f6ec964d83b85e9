"""A CRUD and CDR round trip through ``gateway.store.Store``, run on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.runtime.records import CallRecord, SessionRecord
from gateway.store import AlreadyExists, NotFound, Store


async def store_round_trip(store: Store) -> None:
    """Exercise every Store operation once and check what comes back."""
    await store.ensure_account(1, "first", "key-1")
    await store.ensure_account(2, "second", "key-2")
    await store.ensure_account(2, "second renamed", "key-2b")  # key rotation
    assert (await store.authenticate(1, "key-1")).account_name == "first"
    assert await store.authenticate(2, "key-2") is None
    assert (await store.authenticate(2, "key-2b")).account_name == "second renamed"
    assert await store.authenticate(3, "key-1") is None

    app = await store.add_application(1, "ivr")
    with pytest.raises(AlreadyExists):
        await store.add_application(1, "ivr")
    other_app = await store.add_application(2, "ivr")  # same name, other account: fine
    s_a = await store.add_scenario(1, "a", "A = 1")
    s_b = await store.add_scenario(1, "b", "B = 2")
    with pytest.raises(AlreadyExists):
        await store.add_scenario(1, "a", "A = 3")
    assert (await store.add_scenario(1, "a", "A = 3", rewrite=True)).scenario_id == s_a.scenario_id

    rule = await store.add_rule(1, application_id=app.application_id, rule_name="sales",
                                rule_pattern=r"\+1800.*", rule_pattern_exclude=r"\+18000.*",
                                scenario_ids=[s_b.scenario_id], scenario_names=["a"])
    assert [s.scenario_name for s in rule.scenarios] == ["b", "a"]
    catch_all = await store.add_rule(1, application_id=app.application_id, rule_name="all",
                                     rule_pattern=".*")
    assert catch_all.position == rule.position + 1
    with pytest.raises(AlreadyExists):
        await store.add_rule(1, application_id=app.application_id, rule_name="all",
                             rule_pattern=".*")
    with pytest.raises(NotFound):  # another account's application
        await store.add_rule(1, application_id=other_app.application_id, rule_name="x",
                             rule_pattern=".*")

    match = await store.match_inbound_rule("+18005551234")
    assert match is not None and match.rule_id == rule.rule_id and match.account_id == 1
    assert [(s.name, s.script) for s in match.scenarios] == [("b", "B = 2"), ("a", "A = 3")]
    excluded = await store.match_inbound_rule("+18000000000")  # excluded -> next rule
    assert excluded is not None and excluded.rule_id == catch_all.rule_id

    resolved = await store.resolve_rule(1, rule_name="sales", application_id=app.application_id)
    assert resolved.rule_id == rule.rule_id
    with pytest.raises(NotFound):
        await store.resolve_rule(2, rule_id=rule.rule_id)  # isolation

    await store.set_scenario_info(1, scenario_name="b", new_name="b2", scenario_script="B = 4")
    page = await store.get_scenarios(1, scenario_name="b2", with_script=True)
    assert page.total_count == 1 and page.items[0].scenario_script == "B = 4"
    assert (await store.del_scenarios(1, scenario_names=["b2"])) == 1
    rules = await store.get_rules(1, application_id=app.application_id)
    assert rules.total_count == 2
    assert [s.scenario_name for s in rules.items[0].scenarios] == ["a"]  # unbound

    start = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    record = SessionRecord(session_id="sess-1", account_id=1, application_id=app.application_id,
                           application_name="ivr", rule_id=rule.rule_id, rule_name="sales",
                           start_date=start, custom_data='{"k": "v"}')
    history_id = await store.session_started(record)
    assert record.call_session_history_id == history_id
    record.calls = [
        CallRecord(call_id="c1", start_time=start + timedelta(seconds=1), incoming=True,
                   local_number="+18005551234", remote_number="+15550001", duration=42,
                   successful=True, result_code=200, finish_reason="normal",
                   end_time=start + timedelta(seconds=45), direction="in"),
        CallRecord(call_id="c2", start_time=start + timedelta(seconds=2), incoming=False,
                   local_number="+15550002", remote_number="+15550003", result_code=486,
                   finish_reason="busy", direction="out"),
    ]
    record.duration, record.finish_reason = 50, "normal"
    record.end_date = start + timedelta(seconds=50)
    await store.session_finished(record)
    await store.session_finished(record)  # idempotent

    history = await store.get_call_history(1, from_date=start - timedelta(hours=1),
                                           to_date=start + timedelta(hours=1), with_calls=True)
    assert history.total_count == 1
    got = history.items[0]
    assert got.call_session_history_id == history_id
    assert got.start_date == start and got.end_date == start + timedelta(seconds=50)
    assert (got.duration, got.finish_reason, got.custom_data) == (50, "normal", '{"k": "v"}')
    assert [(c.call_id, c.duration, c.successful, c.result_code) for c in got.calls] == [
        ("c1", 42, True, 200), ("c2", 0, False, 486)]
    assert got.calls[0].end_time == start + timedelta(seconds=45)
    assert (await store.get_call_history(2, from_date=start - timedelta(hours=1),
                                         to_date=start + timedelta(hours=1))).total_count == 0

    assert (await store.del_rules(1, rule_ids=[catch_all.rule_id])) == 1
    assert (await store.del_applications(1, application_names=["ivr"])) == 1
    assert (await store.get_rules(1)).total_count == 0
    assert await store.match_inbound_rule("+18005551234") is None
