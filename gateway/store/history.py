"""Session CDRs (call history): the runtime's ``session_started``/``session_finished``
and Voximplant's ``GetCallHistory`` (CallSessionInfoType with CallInfoType calls).

A mixin of :class:`gateway.store.repository.Store`; its methods run on the store's
database threads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session, selectinload

from gateway.runtime.records import CallRecord, SessionRecord
from gateway.store.keys import _StoreBase
from gateway.store.keys import offloaded as _offloaded
from gateway.store.models import CallRow, CallSession, utcnow
from gateway.store.records import Page


def _page(stmt: Select[Any], offset: int, count: int) -> Select[Any]:
    """``stmt`` limited to one page (``offset``/``count`` as Voximplant pages)."""
    return stmt.offset(max(offset, 0)).limit(max(count, 0))


def _total(session: Session, stmt: Select[Any]) -> int:
    """How many rows ``stmt`` matches, ignoring paging and order."""
    return session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


def _turns(text: str | None) -> list[dict[str, Any]]:
    """The stored ``voice_ai_turns`` JSON as a list (empty when absent or unreadable)."""
    if not text:
        return []
    try:
        turns = json.loads(text)
    except ValueError:
        return []
    return [t for t in turns if isinstance(t, dict)] if isinstance(turns, list) else []


def _session_record(row: CallSession, with_calls: bool) -> SessionRecord:
    record = SessionRecord(
        session_id=row.session_id, account_id=row.account_id,
        application_id=row.application_id, application_name=row.application_name,
        rule_id=row.rule_id, rule_name=row.rule_name, start_date=row.start_date,
        custom_data=row.custom_data, initiator_address=row.initiator_address,
        duration=row.duration, finish_reason=row.finish_reason, end_date=row.end_date,
        call_session_history_id=row.call_session_history_id,
        voice_ai_turns=_turns(row.voice_ai_turns),
    )
    if with_calls:
        record.calls = [
            CallRecord(call_id=c.call_id, start_time=c.start_time, incoming=c.incoming,
                       local_number=c.local_number, remote_number=c.remote_number,
                       duration=c.duration, successful=c.successful, result_code=c.result_code,
                       finish_reason=c.finish_reason, end_time=c.end_time,
                       direction=c.direction)
            for c in row.calls
        ]
    return record


class HistoryMixin(_StoreBase):
    """Session CDRs: written by the runtime, read by ``GetCallHistory``."""

    @_offloaded
    def session_started(self, record: SessionRecord) -> int:
        """Persist a new session; returns its ``call_session_history_id``."""
        with self._sessions.begin() as s:
            row = CallSession(
                session_id=record.session_id, account_id=record.account_id,
                application_id=record.application_id, application_name=record.application_name,
                rule_id=record.rule_id, rule_name=record.rule_name,
                start_date=record.start_date, end_date=record.end_date,
                duration=record.duration, finish_reason=record.finish_reason,
                custom_data=record.custom_data, initiator_address=record.initiator_address,
            )
            s.add(row)
            s.flush()
            self._replace_calls(s, row.call_session_history_id, record.calls)
            record.call_session_history_id = row.call_session_history_id
            return row.call_session_history_id

    @_offloaded
    def session_finished(self, record: SessionRecord) -> None:
        """Persist the final CDR of a session: end, duration, finish reason and its calls.

        The row is found by ``call_session_history_id`` (or ``session_id``); a session
        never reported as started is inserted whole.
        """
        with self._sessions.begin() as s:
            row: CallSession | None = None
            if record.call_session_history_id is not None:
                row = s.get(CallSession, record.call_session_history_id)
            if row is None:
                row = s.scalars(select(CallSession)
                                .where(CallSession.session_id == record.session_id)).first()
            if row is None:
                row = CallSession(
                    session_id=record.session_id, account_id=record.account_id,
                    application_id=record.application_id,
                    application_name=record.application_name, rule_id=record.rule_id,
                    rule_name=record.rule_name, start_date=record.start_date)
                s.add(row)
            row.end_date = record.end_date or utcnow()
            row.duration = record.duration
            row.finish_reason = record.finish_reason
            row.initiator_address = record.initiator_address
            if record.custom_data is not None:
                row.custom_data = record.custom_data
            if record.voice_ai_turns:
                row.voice_ai_turns = json.dumps(record.voice_ai_turns, separators=(",", ":"))
            s.flush()
            self._replace_calls(s, row.call_session_history_id, record.calls)
            record.call_session_history_id = row.call_session_history_id

    @staticmethod
    def _replace_calls(s: Session, history_id: int, calls: Sequence[CallRecord]) -> None:
        s.execute(delete(CallRow).where(CallRow.call_session_history_id == history_id))
        for c in {c.call_id: c for c in calls}.values():
            s.add(CallRow(
                call_session_history_id=history_id, call_id=c.call_id, start_time=c.start_time,
                end_time=c.end_time, duration=c.duration, incoming=c.incoming,
                local_number=c.local_number, remote_number=c.remote_number,
                successful=c.successful, result_code=c.result_code,
                finish_reason=c.finish_reason, direction=c.direction))

    # -- history ----------------------------------------------------------------------

    @_offloaded
    def get_call_history(self, account_id: int, *, from_date: datetime, to_date: datetime,
                         call_session_history_ids: Sequence[int] | None = None,
                         application_id: int | None = None, rule_name: str | None = None,
                         with_calls: bool = False, desc_order: bool = False,
                         offset: int = 0, count: int = 20) -> Page[SessionRecord]:
        """GetCallHistory: the account's sessions that started in [from_date, to_date].

        Args:
            from_date: inclusive lower bound of ``start_date`` (UTC).
            to_date: inclusive upper bound of ``start_date`` (UTC).
            call_session_history_ids: only these sessions.
            application_id: only sessions of this application.
            rule_name: only sessions started by a rule of this name.
            with_calls: fill each record's ``calls``.
            desc_order: newest first (default oldest first).
            offset: rows to skip.
            count: rows to return at most.
        """
        stmt = select(CallSession).where(CallSession.account_id == account_id,
                                         CallSession.start_date >= from_date,
                                         CallSession.start_date <= to_date)
        if call_session_history_ids:
            stmt = stmt.where(CallSession.call_session_history_id.in_(
                list(call_session_history_ids)))
        if application_id is not None:
            stmt = stmt.where(CallSession.application_id == application_id)
        if rule_name is not None:
            stmt = stmt.where(CallSession.rule_name == rule_name)
        key = CallSession.call_session_history_id
        order = (CallSession.start_date.desc(), key.desc()) if desc_order else (
            CallSession.start_date, key)
        with self._sessions() as s:
            total = _total(s, stmt)
            page = _page(stmt.order_by(*order), offset, count)
            if with_calls:
                page = page.options(selectinload(CallSession.calls))
            rows = s.scalars(page).all()
            return Page([_session_record(r, with_calls) for r in rows], total)
