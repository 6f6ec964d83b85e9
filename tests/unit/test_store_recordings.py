"""The store's recordings (gateway/store/recordings.py): registering a finished recording,
listing a session's records per account, and finding one by record_id or key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.runtime.records import RecordingRecord
from gateway.store import open_store

T0 = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


def rec(key: str, account: int = 1, session: str = "s1", **over: object) -> RecordingRecord:
    values: dict = dict(record_key=key, account_id=account, session_id=session,
                        call_id="c1", record_name=f"{key}.wav", path=f"{account}/{session}/"
                        f"{key}.wav", start_time=T0, duration=2.52, file_size=80044,
                        format="wav", channels=2, sample_rate=8000)
    values.update(over)
    return RecordingRecord(**values)


async def test_register_list_and_find(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        first = rec("a" * 32)
        rid = await store.recording_finished(first)
        assert rid == first.record_id and isinstance(rid, int)
        second = rec("b" * 32, start_time=T0 - timedelta(seconds=5), call_id=None,
                     format="mp3", channels=1)
        await store.recording_finished(second)
        await store.recording_finished(rec("c" * 32, session="s2"))
        await store.recording_finished(rec("d" * 32, account=2))

        again = rec("a" * 32, duration=3.0)  # the same key again updates the row
        assert await store.recording_finished(again) == rid

        listed = await store.session_recordings(1, ["s1", "s2", "nope"])
        assert [r.record_key for r in listed["s1"]] == ["b" * 32, "a" * 32]  # oldest first
        assert [r.record_key for r in listed["s2"]] == ["c" * 32]
        assert "nope" not in listed
        got = listed["s1"][1]
        assert (got.duration, got.file_size, got.channels, got.call_id, got.start_time) == (
            3.0, 80044, 2, "c1", T0)
        assert listed["s1"][0].call_id is None and listed["s1"][0].format == "mp3"
        assert await store.session_recordings(2, ["s1"]) == {
            "s1": [await store.get_recording(2, "d" * 32)]}
        assert await store.session_recordings(1, []) == {}

        assert (await store.get_recording(1, str(rid))).record_key == "a" * 32
        assert (await store.get_recording(1, "a" * 32)).record_id == rid
        assert await store.get_recording(2, "a" * 32) is None  # another account's
        assert await store.get_recording(2, str(rid)) is None
        assert await store.get_recording(1, "9" * 40) is None
        assert await store.get_recording(1, "") is None
        assert await store.get_recording(1, "x" * 65) is None
    finally:
        await store.close()
