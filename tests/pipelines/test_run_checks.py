"""The steps' run checks: a failed plausibility check stops before anything is written,
``accept_anomalies`` goes on and says so (issue 13)."""

from __future__ import annotations

from datetime import date

import pytest

from features.contract.rules import DataContractError
from features.spec import NO_MATERIALITY
from pipelines.run_checks import check_run, plausibility
from pipelines.settings import Settings
from tests.factories import make_book

BOOK = make_book([("I1", "A", "2024-01-01", "2024-01-31", 100.0)])


def test_plausibility_settings_map_onto_the_library_object(tmp_path):
    s = Settings(data_dir=tmp_path, plausibility={"max_days_beyond_data": 10,
                                                  "amount_cap": 5e6})
    limits = plausibility(s)
    assert limits.max_days_beyond_data == 10 and limits.amount_cap == 5e6
    assert limits.max_balance_change == 0.5  # unset: the library's default


def test_as_of_far_beyond_the_data_stops_with_the_numbers(tmp_path):
    s = Settings(data_dir=tmp_path)
    with pytest.raises(DataContractError) as info:
        check_run(settings=s, book=BOOK, as_of=date(2026, 1, 1))
    assert info.value.rule == "as_of_beyond_data"
    assert "days after the data's last event" in str(info.value)
    assert not (tmp_path / "worklist.db").exists()  # nothing written


def test_accepted_anomalies_are_returned_for_the_runs_meta(tmp_path):
    meta = check_run(settings=Settings(data_dir=tmp_path), book=BOOK, as_of=date(2026, 1, 1),
                     materiality=NO_MATERIALITY,  # the $100 invoice counts
                     accept_anomalies=True)
    assert meta["totals"] == {"open_balance": 100.0, "share_late": 1.0, "accounts": 1}
    assert len(meta["accepted_anomalies"]) == 1
    assert "as_of_beyond_data" in meta["accepted_anomalies"][0]
