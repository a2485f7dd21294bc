"""Workbench events read back as the collections loop's data, point in time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import sqlalchemy as sa

from features.spec import EventKind
from serving.loop_events import book_with_events
from serving.store import WorklistStore
from serving.store_events import events
from tests.factories import make_book


def _at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def _store(tmp_path, rows: list[dict]) -> WorklistStore:
    url = f"sqlite:///{tmp_path / 'worklist.db'}"
    store = WorklistStore(url, upgrade=True)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for k, row in enumerate(rows, start=1):
            conn.execute(sa.insert(events).values(
                event_id=k, recorded_by="ana", event_date=row["recorded_at"].date(), **row))
    engine.dispose()
    return store


def test_events_are_read_as_contract_rows_from_the_day_after_they_were_recorded(tmp_path):
    promise = dict(kind=EventKind.PROMISE.value, account_id="A",
                   recorded_at=_at("2024-03-01"), promised_date=date(2024, 3, 10), amount=50.0)
    rows = [
        promise,
        dict(kind=EventKind.CONTACT.value, account_id="A", recorded_at=_at("2024-03-01", 23),
             channel="phone", outcome="promised"),
        dict(kind=EventKind.PROMISE_CANCELLED.value, account_id="A",
             recorded_at=_at("2024-03-04"), refers_to=1),
        dict(kind=EventKind.DISPUTE_OPENED.value, account_id="A", invoice_id="I1",
             recorded_at=_at("2024-03-02"), reason="price"),
        dict(kind=EventKind.SNOOZE.value, account_id="A", recorded_at=_at("2024-03-02"),
             until=date(2024, 3, 20)),
        dict(kind=EventKind.UNSNOOZE.value, account_id="A", recorded_at=_at("2024-03-06"),
             refers_to=5),
    ]
    with _store(tmp_path, rows) as store:
        assert store.read_loop_events(as_of=date(2024, 3, 1)).n_events == 0
        day2 = store.read_loop_events(as_of=date(2024, 3, 2))
        assert day2.promises["promise_id"].tolist() == ["wb-1"]
        assert day2.promises["recorded_date"].tolist() == [pd.Timestamp("2024-03-01")]
        assert day2.promises["cancelled_date"].isna().all()  # cancelled later
        assert day2.contacts["channel"].tolist() == ["phone"]
        assert day2.disputes.empty and day2.snoozes.empty
        day5 = store.read_loop_events(as_of=date(2024, 3, 5))
        assert day5.promises["cancelled_date"].tolist() == [pd.Timestamp("2024-03-04")]
        # a workbench dispute is dated the day it was recorded
        assert day5.disputes["opened_date"].tolist() == [pd.Timestamp("2024-03-02")]
        assert day5.snoozes["snoozed_until"].tolist() == [pd.Timestamp("2024-03-20")]
        assert store.read_loop_events(as_of=date(2024, 3, 7)).snoozes.empty  # unsnoozed

        book = make_book([("I1", "A", "2024-01-01", "2024-01-31", 100.0)])
        merged = book_with_events(book, day5)
        assert len(merged.promises) == 1 and len(merged.disputes) == 1
        assert book.promises.empty and book.disputes.empty  # never mutated
