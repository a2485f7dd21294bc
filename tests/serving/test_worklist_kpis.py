"""The one rendering of a run's KPIs (``serving.worklist.kpi_line``): what ``delinq
worklist``, the demo and the nightly artifact print."""

from __future__ import annotations

from serving.worklist import kpi_line

STORED = {
    "as_of": "2024-07-01", "total_ar": 1300.0,
    "aging": {"current": 600.0, "1-30": 100.0, "31-60": 150.0, "61-90": 150.0, "91+": 300.0},
    "unapplied_credit": 0.0, "dso": 81.0, "best_possible_dso": 30.0,
    "average_days_delinquent": 51.0, "cei": 36.36, "promise_kept_rate": None,
    "collected_from_worklist": 400.0, "previous_as_of": "2024-06-01", "seconds": 0.1,
}


def test_kpi_line_of_a_stored_run():
    # past due = (100 + 150 + 150 + 300) / 1300 = 54%
    assert kpi_line(STORED) == ("KPIs: AR 1.3k (past due 54%), DSO 81.0 d, best 30.0 d, "
                                "ADD 51.0 d, CEI 36.4%, collected from the last worklist 400")


def test_kpi_line_without_history_previous_run_or_promises():
    empty = {**STORED, "total_ar": 0.0, "aging": dict.fromkeys(STORED["aging"], 0.0),
             "dso": None, "best_possible_dso": None, "average_days_delinquent": None,
             "cei": None, "collected_from_worklist": None}
    assert kpi_line(empty) == "KPIs: AR 0, DSO n/a, best n/a, ADD n/a, CEI n/a"
    big = {**STORED, "total_ar": 2_345_678.0, "promise_kept_rate": 75.0,
           "collected_from_worklist": 12_345.0}
    assert kpi_line(big).startswith("KPIs: AR 2.3M (past due 54%)")
    assert kpi_line(big).endswith("promises kept 75%, collected from the last worklist 12.3k")
