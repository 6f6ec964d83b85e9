"""Store behaviour on SQLite: round trip, rule order, paging, CDRs, account isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.runtime.records import SessionRecord
from gateway.store import NotFound, Store, open_store
from tests.integration.store_roundtrip import store_round_trip


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[Store]:
    st = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield st
    await st.close()


async def test_round_trip_on_sqlite(store: Store) -> None:
    await store_round_trip(store)


async def test_inbound_match_order_is_application_then_position(store: Store) -> None:
    await store.ensure_account(1, "a", "k")
    await store.ensure_account(2, "b", "k")
    app1 = await store.add_application(1, "first")
    app2 = await store.add_application(2, "second")
    sc = await store.add_scenario(2, "s", "pass")
    await store.add_rule(2, application_id=app2.application_id, rule_name="any",
                         rule_pattern=".*", scenario_ids=[sc.scenario_id])
    r1 = await store.add_rule(1, application_id=app1.application_id, rule_name="digits",
                              rule_pattern=r"\d+")
    r2 = await store.add_rule(1, application_id=app1.application_id, rule_name="later",
                              rule_pattern=r"1\d+")
    match = await store.match_inbound_rule("123")
    assert match is not None and match.rule_id == r1.rule_id and match.scenarios == []
    # fullmatch: "12a" is not digits, falls through to the other account's catch-all
    match = await store.match_inbound_rule("12a")
    assert match is not None and match.account_id == 2 and match.scenarios[0].script == "pass"
    assert r2.position == r1.position + 1


async def test_unknown_items_raise_not_found(store: Store) -> None:
    await store.ensure_account(1, "a", "k")
    with pytest.raises(NotFound) as info:
        await store.get_application(1, application_id=99)
    assert info.value.kind == "application"
    with pytest.raises(NotFound) as info:
        await store.resolve_rule(1, rule_id=99)
    assert info.value.kind == "rule"
    with pytest.raises(NotFound) as info:
        await store.del_scenarios(1, scenario_ids=[99])
    assert info.value.kind == "scenario"


async def test_history_paging_and_filters(store: Store) -> None:
    await store.ensure_account(1, "a", "k")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(5):
        await store.session_started(SessionRecord(
            session_id=f"s{i}", account_id=1, application_id=7, application_name="app",
            rule_id=1, rule_name="even" if i % 2 == 0 else "odd",
            start_date=t0 + timedelta(minutes=i)))
    window = {"from_date": t0, "to_date": t0 + timedelta(hours=1)}
    page = await store.get_call_history(1, offset=1, count=2, **window)
    assert page.total_count == 5
    assert [r.session_id for r in page.items] == ["s1", "s2"]
    page = await store.get_call_history(1, desc_order=True, count=1, **window)
    assert [r.session_id for r in page.items] == ["s4"]
    page = await store.get_call_history(1, rule_name="odd", **window)
    assert page.total_count == 2
    page = await store.get_call_history(1, from_date=t0 + timedelta(minutes=3),
                                        to_date=t0 + timedelta(hours=1))
    assert [r.session_id for r in page.items] == ["s3", "s4"]
    page = await store.get_call_history(1, call_session_history_ids=[1, 2], **window)
    assert page.total_count == 2


async def test_api_key_is_not_stored_in_clear(store: Store, tmp_path) -> None:
    await store.ensure_account(1, "a", "super-secret-key-123")
    raw = (tmp_path / "store.db").read_bytes()
    assert b"super-secret-key-123" not in raw


async def test_default_inbound_setup_only_on_an_empty_account(store: Store) -> None:
    assert not await store.account_exists(1)
    await store.ensure_account(1, "a", "k")
    assert await store.account_exists(1)
    assert await store.ensure_default_inbound(1, "X = 1") is True
    assert await store.ensure_default_inbound(1, "X = 2") is False  # operator's setup wins
    match = await store.match_inbound_rule("agent")
    assert match is not None
    assert (match.application_name, match.rule_name) == ("default", "inbound")
    assert [(s.name, s.script) for s in match.scenarios] == [("inbound_ai", "X = 1")]
