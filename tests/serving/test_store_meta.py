"""Facts learned after a run go under one key of its ``meta`` (issue 19: live performance),
on SQLite and PostgreSQL, with the guarantees of ``serving.store_runs.set_meta``: other
keys, columns and rows untouched; two writers of different keys both keep theirs; a
failure inside the transaction leaves ``meta`` exactly as it was."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from serving.store import WorklistStore
from tests.serving.test_store import DAY, publish


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'worklist.db'}"
    return request.getfixturevalue("pg_schema_url")


def _open(url: str, tmp_path: Path, **kwargs: object) -> WorklistStore:
    return WorklistStore(url, export_dir=tmp_path / "exports",
                         explanations_dir=tmp_path / "explanations", **kwargs)  # type: ignore[arg-type]


def test_set_run_meta_adds_one_key_and_keeps_everything_else(url: str, tmp_path: Path) -> None:
    with _open(url, tmp_path, upgrade=True) as store:
        run = publish(store, 30)
        before = store.read_worklist(as_of=DAY)
        got = store.set_run_meta(run.run_id, "live", {"auc": 0.8, "nan": float("nan"),
                                                      "rows": [1, 2]})
        assert got.meta == {"data": "synthetic", "live": {"auc": 0.8, "nan": None,
                                                          "rows": [1, 2]}}
        # columns, status, publication and rows are as they were
        for name in ("status", "is_current", "early_warning_version", "persistence_version",
                     "feature_set_version", "message", "timings", "n_scored", "finished_at"):
            assert getattr(got, name) == getattr(run, name), name
        assert store.read_worklist(as_of=DAY).equals(before)
        # a second value replaces the key; another key sits beside it
        store.set_run_meta(run.run_id, "live", {"auc": 0.7})
        again = store.set_run_meta(run.run_id, "kpis", {"calls": 3})
        assert again.meta == {"data": "synthetic", "live": {"auc": 0.7}, "kpis": {"calls": 3}}
        assert store.list_runs().iloc[0]["meta"] == again.meta


def test_set_run_meta_refuses_unknown_runs_and_column_keys(url: str, tmp_path: Path) -> None:
    with _open(url, tmp_path, upgrade=True) as store:
        run = publish(store, 5)
        with pytest.raises(KeyError, match="no run 'nope'"):
            store.set_run_meta("nope", "live", {})
        for key in ("model_versions", "message", "timings", "feature_set_version", ""):
            with pytest.raises(ValueError, match="meta key"):
                store.set_run_meta(run.run_id, key, {})
        assert store.current_run(as_of=DAY).meta == {"data": "synthetic"}


def test_a_failure_inside_the_transaction_leaves_meta_unchanged(url: str,
                                                                tmp_path: Path) -> None:
    with _open(url, tmp_path, upgrade=True) as store:
        run = publish(store, 5)
        store.set_run_meta(run.run_id, "kpis", {"calls": 1})
        engine = store._engine

        # The UPDATE reaches the database, then the transaction fails before its commit.
        def fail_after_update(conn: sa.Connection, cursor: object, statement: str,
                              *args: object) -> None:
            if statement.lstrip().upper().startswith("UPDATE RUNS"):
                raise RuntimeError("injected failure after the update")

        event.listen(engine, "after_cursor_execute", fail_after_update)
        try:
            with pytest.raises(Exception, match="injected failure"):
                store.set_run_meta(run.run_id, "live", {"auc": 0.9})
        finally:
            event.remove(engine, "after_cursor_execute", fail_after_update)
        with _open(url, tmp_path) as reader:  # a fresh connection sees the committed state
            assert reader.current_run(as_of=DAY).meta == {"data": "synthetic",
                                                          "kpis": {"calls": 1}}


def test_two_writers_of_different_keys_both_keep_theirs(url: str, tmp_path: Path) -> None:
    with _open(url, tmp_path, upgrade=True) as store:
        run_id = publish(store, 5).run_id
    errors: list[BaseException] = []

    def write(key: str) -> None:
        try:
            with _open(url, tmp_path) as own:
                for i in range(15):
                    own.set_run_meta(run_id, key, {"i": i})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in ("live", "kpis")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with _open(url, tmp_path) as store:
        meta = store.current_run(as_of=DAY).meta
    assert meta == {"data": "synthetic", "live": {"i": 14}, "kpis": {"i": 14}}


def test_the_run_list_shows_model_age_and_live_figure(tmp_path: Path) -> None:
    from serving.worklist import format_runs

    with _open(f"sqlite:///{tmp_path / 'worklist.db'}", tmp_path, upgrade=True) as store:
        plain = publish(store, 3)
        run = publish(store, 3, as_of=DAY.replace(day=2), seed=1)
        # the second run is as of 2024-03-02: 2024-01-01 is 31 + 29 + 1 = 61 days before
        # it, 2023-12-02 is 31 + 31 + 29 = 91 (above the limit of 90)
        store.set_run_meta(run.run_id, "champion_data_end",
                           {"early_warning": "2024-01-01", "persistence": "2023-12-02"})
        store.set_run_meta(run.run_id, "live", {"table": [
            {"slice": "all", "population": "all", "ranked_by": "model", "auc": 0.812,
             "rule_auc": 0.7449}]})
        text = format_runs(store.list_runs(), stale_model_days=90)
    line = next(ln for ln in text.splitlines() if run.run_id in ln)
    assert "61d/91d!" in line and line.endswith("AUC 0.81 vs 0.74")
    assert "model age" in text and "live AUC vs rule" in text
    old = next(ln for ln in text.splitlines() if plain.run_id in ln)
    assert old.split()[-2:] == ["-", "-"]  # neither known: no age, not evaluated
