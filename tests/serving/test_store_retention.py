"""Retention: explanation files of the newest N published runs kept, runs older than the
score horizon deleted with their files, old exports removed, running runs never touched;
`delinq runs prune` applies the settings (scores never kept less than the label horizon
plus 60 days)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.settings import load_settings
from serving.store import WorklistStore
from tests.serving.test_store import DAY, publish, rows_table, worklist_rows


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'worklist.db'}"
    return request.getfixturevalue("pg_schema_url")


def test_prune_keeps_what_the_policy_says(url: str, tmp_path: Path) -> None:
    days = [DAY + timedelta(days=7 * i) for i in range(6)]
    with WorklistStore(url, export_dir=tmp_path / "exports",
                       explanations_dir=tmp_path / "explanations") as store:
        runs = [publish(store, 5, as_of=d, seed=i) for i, d in enumerate(days)]
        running = store.begin_run(as_of=days[0], meta={})
        today = days[-1]
        gone = store.prune(today=today, keep_explanations=2, keep_scores_days=22,
                           keep_exports_days=8)
        # Runs with as_of more than 22 days before today: the first two (35, 28 days).
        assert sorted(gone["runs"]) == sorted(r.run_id for r in runs[:2])
        left = set(store.list_runs()["run_id"])
        assert left == {r.run_id for r in runs[2:]} | {running}
        # Explanations: only the newest two published runs keep theirs.
        assert sorted(gone["explanations"]) == sorted(r.run_id for r in runs[:4])
        for r in runs[4:]:
            assert not store.read_explanations(r.run_id).empty
        for r in runs[2:4]:
            with pytest.raises(KeyError):
                store.read_explanations(r.run_id)
            assert not (tmp_path / "explanations" / r.run_id).exists()
            assert len(store.read_worklist(as_of=r.as_of)) == 5  # rows stay
        # Exports older than 8 days: all but the last two weeks' folders.
        exports = sorted(p.name for p in (tmp_path / "exports").iterdir() if p.name[0] != "_")
        assert exports == [d.isoformat() for d in days[-2:]]
        assert store._run(running).status == "running"  # never touched


def test_runs_prune_command_applies_the_settings_with_the_minimum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DELINQ_STORE_URL", raising=False)
    state = tmp_path / "state"
    assert load_settings(retain_scores_days=5).resolved_retain_scores_days == 30 + 30 + 60
    with WorklistStore(f"sqlite:///{state / 'worklist.db'}",
                       export_dir=state / "exports") as store:
        old = publish(store, 3, as_of=DAY - timedelta(days=121), seed=1)
        kept = publish(store, 3, as_of=DAY - timedelta(days=119), seed=2)
    monkeypatch.setenv("DELINQ_RETAIN_SCORES_DAYS", "5")  # below the minimum: 120 applies
    result = CliRunner().invoke(app, ["runs", "--state-dir", str(state), "prune",
                                      "--today", DAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert "1 runs" in result.output
    with WorklistStore(f"sqlite:///{state / 'worklist.db'}") as store:
        assert set(store.list_runs()["run_id"]) == {kept.run_id}
        assert old.run_id not in set(store.list_runs()["run_id"])


def test_the_disk_check_stops_a_run_in_one_line(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import steps
    from pipelines.errors import NotEnoughDiskError

    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DELINQ_STORE_URL", raising=False)
    state = tmp_path / "state"
    assert steps.check_disk(settings=load_settings(data_dir=state, min_free_disk_mb=0)) > 0
    with WorklistStore(f"sqlite:///{state / 'worklist.db'}") as store:
        publish(store, 4)
    huge = load_settings(data_dir=state, min_free_disk_mb=10**9)
    with pytest.raises(NotEnoughDiskError, match=r"not enough free disk under .*did not start"):
        steps.check_disk(settings=huge)


def test_kpis_outlive_the_scores_they_were_computed_beside(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving import store_runs

    days = [DAY + timedelta(days=30 * i) for i in range(4)]
    with WorklistStore(url, explanations_dir=tmp_path / "explanations") as store:
        runs = [publish(store, 4, as_of=d, seed=i) for i, d in enumerate(days)]
        for run in runs[:3]:
            store.set_run_meta(run.run_id, store_runs.KPIS_KEY, {"dso_days": 41.5})
        plain = publish(store, 3, as_of=days[1] + timedelta(days=1), seed=9)  # no KPIs
        today = days[-1]
        policy = {"today": today, "keep_explanations": 9, "keep_scores_days": 31,
                  "keep_exports_days": 99, "keep_kpis_days": 61}
        gone = store.prune(**policy)
        # Scores older than 31 days go; KPIs within 61 days stay with their record.
        assert sorted(gone["runs"]) == sorted([runs[0].run_id, plain.run_id])
        assert gone["scores"] == [runs[1].run_id]
        kept = store._run(runs[1].run_id)
        assert kept.meta["kpis"] == {"dso_days": 41.5}
        assert kept.meta["scores_pruned"] == today.isoformat()
        assert store.read_worklist(as_of=days[1]).empty
        with pytest.raises(KeyError):
            store.read_explanations(runs[1].run_id)
        assert not (tmp_path / "explanations" / runs[1].run_id).exists()
        assert len(store.read_worklist(as_of=days[2])) == 4  # within the scores' days
        # Pruning again changes nothing; without a KPI setting KPIs go with the scores.
        assert store.prune(**policy) == {"explanations": [], "runs": [], "scores": [],
                                         "exports": []}
        gone = store.prune(**{**policy, "keep_kpis_days": None})
        assert gone["runs"] == [runs[1].run_id]
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    assert load_settings(retain_kpis_days=1).resolved_retain_kpis_days == 30 + 30 + 60
    assert load_settings().resolved_retain_kpis_days == 730


def test_a_prune_killed_between_chunks_hides_the_run_and_the_next_writer_finishes_it(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    from serving import store_bulk, store_publish, store_runs
    from serving import store_schema as S

    monkeypatch.setattr(store_bulk, "CHUNK_ROWS", 3)  # 9 rows: three delete transactions
    old_day, kpi_day = DAY - timedelta(days=60), DAY - timedelta(days=50)
    with WorklistStore(url, export_dir=tmp_path / "exports",
                       explanations_dir=tmp_path / "explanations") as store:
        old = publish(store, 9, as_of=old_day, seed=1)
        kpi = publish(store, 9, as_of=kpi_day, seed=2)
        store.set_run_meta(kpi.run_id, store_runs.KPIS_KEY, {"dso_days": 40.0})
        recent = publish(store, 4, as_of=DAY, seed=3)
        policy = {"today": DAY, "keep_explanations": 9, "keep_scores_days": 30,
                  "keep_exports_days": 999, "keep_kpis_days": 90}

        # The rows deleted in chunks: the worklist's (PostgreSQL), or on a SQLite file
        # store the history's (the run's worklist rows are its file, unlinked after).
        chunked = S.worklist if rows_table(store) == "worklist" else S.worklist_history
        seam = "_after_drop_step" if chunked is S.worklist else "_after_history_step"

        def rows_of(run_id: str) -> int:
            with store._engine.connect() as conn:
                return int(conn.execute(sa.select(sa.func.count()).select_from(chunked)
                                        .where(chunked.c.run_id == run_id)).scalar_one())

        seen: list[str] = []

        def reader_then_kill(run_id: str, rows_done: int) -> None:
            # A reader between two committed chunks sees no trace of the run being deleted.
            day = old_day if run_id == old.run_id else kpi_day
            assert rows_of(run_id) < 9  # some rows gone, the run hidden
            assert store.current_run(as_of=day) is None
            assert store.read_worklist(as_of=day).empty
            assert run_id not in set(store.list_runs()["run_id"])
            with pytest.raises(KeyError):
                store.read_explanations(run_id)
            if run_id not in seen:  # killed once, after its first chunk
                seen.append(run_id)
                raise RuntimeError("killed between two chunks")

        monkeypatch.setattr(store_publish, seam, reader_then_kill)
        with pytest.raises(RuntimeError, match="killed"):
            store.prune(**policy)
        assert seen == [old.run_id] and 0 < rows_of(old.run_id) < 9  # half-deleted, hidden
        assert set(store.list_runs()["run_id"]) == {kpi.run_id, recent.run_id}
        # The next prune finishes the old run's deletion, then is killed in the KPI run's.
        with pytest.raises(RuntimeError, match="killed"):
            store.prune(**policy)
        assert seen == [old.run_id, kpi.run_id] and rows_of(old.run_id) == 0
        assert 0 < rows_of(kpi.run_id) < 9
        assert set(store.list_runs()["run_id"]) == {recent.run_id}
        # The next writer (a run beginning) finishes it.
        store.fail_run(store.begin_run(as_of=DAY, meta={}), message="test")
        assert rows_of(kpi.run_id) == 0
        assert worklist_rows(store, kpi.run_id) == worklist_rows(store, old.run_id) == 0
        runs = store.list_runs().set_index("run_id")
        assert old.run_id not in runs.index
        assert runs.loc[kpi.run_id, "meta"]["scores_pruned"] == DAY.isoformat()
        assert "deleting" not in runs.loc[kpi.run_id, "meta"]
        assert runs.loc[kpi.run_id, "meta"]["kpis"] == {"dso_days": 40.0}
        assert not bool(runs.loc[kpi.run_id, "is_current"])
        assert not (tmp_path / "explanations" / old.run_id).exists()
        assert not (tmp_path / "explanations" / kpi.run_id).exists()
        assert len(store.read_worklist(as_of=DAY)) == 4  # the recent run untouched
        assert store.prune(**policy) == {"explanations": [], "runs": [], "scores": [],
                                         "exports": []}
