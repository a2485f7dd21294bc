"""The KPIs of a run (issue 17): computed by the score step, stored in the run's
``meta["kpis"]``, shown by ``delinq worklist`` and in the nightly's markdown artifact. Two
runs through the real CLI: the second counts what was collected from the first one's
worklist."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.pit.kpis import compute_kpis
from pipelines import steps
from pipelines.artifacts import summary_markdown
from pipelines.cli import app
from pipelines.settings import load_settings
from serving.store import WorklistStore
from serving.worklist import kpi_line


def test_score_stores_the_kpis_and_the_worklist_shows_them(
    trained_state, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from features.contract.io import write_book

    data, state = tmp_path / "book", tmp_path / "state"
    write_book(trained_state.book, data)
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DELINQ_DATA_DIR", raising=False)
    monkeypatch.delenv("DELINQ_STORE_URL", raising=False)
    monkeypatch.setenv("DELINQ_MLFLOW_TRACKING_URI", trained_state.tracking_uri)
    monkeypatch.setenv("DELINQ_EARLY_WARNING_MODEL", trained_state.names["early_warning"])
    monkeypatch.setenv("DELINQ_PERSISTENCE_MODEL", trained_state.names["persistence"])
    first, second = date(2024, 3, 1), date(2024, 3, 15)
    for day in (first, second):
        result = CliRunner().invoke(app, ["score", str(data), "--as-of", day.isoformat(),
                                          "--state-dir", str(state)])
        assert result.exit_code == 0, result.output

    settings = load_settings(data_dir=state)
    book = steps.read_book(steps.staging_dir(settings))
    with WorklistStore(settings.resolved_store_url) as store:
        runs = {r.as_of: r for r in store.list_runs().itertuples(index=False)}
        ids = store.read_worklist(as_of=first)["account_id"].tolist()
    stored = {day: dict(runs[day].meta["kpis"]) for day in (first, second)}
    for kpis in stored.values():
        assert kpis.pop("seconds") >= 0
    # the first run has no previous run; the second counts the first one's worklist
    assert stored[first] == compute_kpis(book, as_of=first).as_dict()
    assert stored[second] == compute_kpis(book, as_of=second, previous=(first, ids)).as_dict()
    assert stored[second]["previous_as_of"] == "2024-03-01"
    assert stored[second]["collected_from_worklist"] > 0
    assert stored[second]["total_ar"] > 0 and stored[second]["dso"] > 0

    shown = CliRunner().invoke(app, ["worklist", str(state), "--top", "3"])
    assert shown.exit_code == 0, shown.output
    assert kpi_line(runs[second].meta["kpis"]) in shown.output.splitlines()

    markdown = summary_markdown("nightly", facts={}, timings={}, kpis=runs[second].meta["kpis"])
    assert "## Receivables KPIs" in markdown
    assert kpi_line(runs[second].meta["kpis"]) in markdown
    assert "| aging | current | 1-30 | 31-60 | 61-90 | 91+ |" in markdown
