"""Recordings: the runtime registers each finished recording
(:meth:`RecordingsMixin.recording_finished`, part of the runtime's ``SessionStore``);
``GetCallHistory(with_records=true)`` lists them per session (Voximplant's RecordType) and
``GET /records/{record_id}`` finds one to serve.

A mixin of :class:`gateway.store.repository.Store`; its methods run on the store's
database threads. Every read is scoped to one account.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from gateway.runtime.records import RecordingRecord
from gateway.store.keys import _StoreBase, offloaded
from gateway.store.models import Recording

#: Longest ``record_key`` (a recorder id is 32 hex characters).
MAX_KEY_CHARS = 64


def _record(row: Recording) -> RecordingRecord:
    return RecordingRecord(
        record_key=row.record_key, account_id=row.account_id, session_id=row.session_id,
        call_id=row.call_id, record_name=row.record_name, path=row.path,
        start_time=row.start_time, duration=row.duration_ms / 1000,
        file_size=row.file_size, format=row.format, channels=row.channels,
        sample_rate=row.sample_rate, record_id=row.record_id)


class RecordingsMixin(_StoreBase):
    """Recording rows, mixed into :class:`gateway.store.repository.Store`."""

    @offloaded
    def recording_finished(self, record: RecordingRecord) -> int:
        """Register a finished recording; returns its ``record_id`` (also set on ``record``).

        Registering the same ``record_key`` again updates that row.
        """
        with self._sessions.begin() as s:
            row = s.scalars(select(Recording)
                            .where(Recording.record_key == record.record_key)).first()
            if row is None:
                row = Recording(record_key=record.record_key)
                s.add(row)
            row.account_id = record.account_id
            row.session_id = record.session_id
            row.call_id = record.call_id
            row.record_name = record.record_name
            row.path = record.path
            row.format = record.format
            row.channels = record.channels
            row.sample_rate = record.sample_rate
            row.start_time = record.start_time
            row.duration_ms = round(record.duration * 1000)
            row.file_size = record.file_size
            s.flush()
            record.record_id = row.record_id
            return row.record_id

    @offloaded
    def session_recordings(self, account_id: int,
                           session_ids: Sequence[str]) -> dict[str, list[RecordingRecord]]:
        """The account's recordings of each of ``session_ids``, oldest first."""
        if not session_ids:
            return {}
        out: dict[str, list[RecordingRecord]] = {}
        with self._sessions() as s:
            rows = s.scalars(select(Recording).where(
                Recording.account_id == account_id,
                Recording.session_id.in_(list(session_ids)))
                .order_by(Recording.start_time, Recording.record_id)).all()
            for row in rows:
                out.setdefault(row.session_id, []).append(_record(row))
        return out

    @offloaded
    def get_recording(self, account_id: int, ref: str) -> RecordingRecord | None:
        """The account's recording whose ``record_id`` (digits) or ``record_key`` is
        ``ref``, or None (unknown, or another account's)."""
        ref = ref.strip()
        if not ref or len(ref) > MAX_KEY_CHARS:
            return None
        cond = Recording.record_key == ref
        if ref.isdigit() and len(ref) < 10:
            cond = cond | (Recording.record_id == int(ref))
        with self._sessions() as s:
            row = s.scalars(select(Recording).where(Recording.account_id == account_id, cond)
                            .order_by(Recording.record_id)).first()
            return None if row is None else _record(row)
