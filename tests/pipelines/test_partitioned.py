"""The nightly score in account partitions on Dask (issue 20) gives the single-process run:
(a) a LocalCluster of 2 worker processes, through the score flow, (c) with a worker that
dies right after writing its first partition's files (one run does both), and (b) a
separate ``dask scheduler`` and two ``dask worker`` processes in their own working folders
sharing the work location.

The book is the session's trained book with one invoice id given to two accounts that land
in different partitions: the book-wide duplicate rule quarantines both copies before any
split (partitions each seeing one copy would keep it). Everything the single-process run
carries is there: the collections loop's events recorded in the store (a promise and a
snooze that hold accounts, a contact, a dispute opened), a random holdout (share 0.3) and
a shadow challenger; the runs share one store, so they read the same events. The
single-process run (P = 1) goes first: it also warms numba's on-disk cache before any
worker starts; one Prefect server serves every flow run and worker (``PREFECT_API_URL``
exported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.contract.io import write_book
from features.partition import partition_of
from pipelines import steps
from pipelines.settings import load_settings
from pipelines.steps_partitioned import DIE_AFTER_PART_ENV
from serving.reasons import REASON_COLUMNS
from serving.store import WorklistStore

AS_OF = date(2024, 3, 1)
#: What must be identical: accounts, probabilities, ranks, reasons, holds (and the rest).
COMPARED = ["rank", "account_id", "segment", "probability", "priority", "action",
            *REASON_COLUMNS, "model", "model_version", "scorer", "calibration", "hold",
            "hold_date", "hold_ends"]
#: The run meta that must be identical (the KPIs' ``seconds`` aside).
META = ["n_accounts", "n_by_model", "n_by_segment", "holdout", "n_held", "totals",
        "amount_at_risk"]


def _register_challenger(uri: str, source_name: str, name: str) -> None:
    """``name``: version 1 champion and version 2 challenger, both copies of
    ``source_name`` v1 (the shared registry's own names stay as every test expects)."""
    import mlflow

    from models.registry_aliases import HISTORY_TAG, record_champion

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    src = client.get_model_version(source_name, "1")
    client.create_registered_model(name, tags={HISTORY_TAG: ""})
    for _ in range(2):
        client.create_model_version(name, source=src.source, run_id=src.run_id,
                                    tags=dict(src.tags))
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    record_champion(client, name, "1")


@pytest.fixture(scope="module")
def env(trained_state, tmp_path_factory: pytest.TempPathFactory,
        prefect_server) -> Iterator[dict[str, str]]:
    """The settings' environment (an early-warning model with a challenger, the session's
    persistence champion, a holdout share, one store for every run) and the shared Prefect
    API, exported for worker processes; restored afterwards."""
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("partitioned")
    _register_challenger(trained_state.tracking_uri, trained_state.names["early_warning"],
                         "dask-ew")
    values = {
        "DELINQ_CONFIG": str(root / "absent.toml"),
        "DELINQ_MLFLOW_TRACKING_URI": trained_state.tracking_uri,
        "DELINQ_EARLY_WARNING_MODEL": "dask-ew",
        "DELINQ_PERSISTENCE_MODEL": trained_state.names["persistence"],
        "DELINQ_STORE_URL": f"sqlite:///{root / 'store.db'}",
        "DELINQ_LIVE_HOLDOUT_SHARE": "0.3",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    saved = {k: os.environ.get(k) for k in [*values, "DELINQ_DATA_DIR"]}
    os.environ.pop("DELINQ_DATA_DIR", None)
    os.environ.update(values)
    try:
        yield values
    finally:
        for k, v in saved.items():
            _set_env(k, v)


def _record_events(settings, inv: pd.DataFrame) -> None:
    """A promise and a snooze (both hold their account at ``AS_OF``), a contact and a
    dispute opened, recorded two days before ``AS_OF`` on accounts with recent invoices."""
    from serving import store_io
    from workbench.events import (
        AccountFacts,
        ContactIn,
        DisputeOpenedIn,
        PromiseIn,
        SnoozeIn,
        record_event,
    )
    from workbench.users import add_user

    recent = inv[(inv["issue_date"] < pd.Timestamp(AS_OF))
                 & (inv["issue_date"] >= pd.Timestamp(AS_OF) - pd.Timedelta(days=20))]
    accounts = sorted(recent["account_id"].astype(str).unique())
    assert len(accounts) >= 4
    now = datetime.combine(AS_OF - timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    WorklistStore(settings.resolved_store_url, upgrade=True).close()
    engine = store_io.make_engine(store_io.normalise_url(settings.resolved_store_url))
    try:
        user = add_user(engine, username="ann", role="analyst", password="a-long-password",
                        actor="test", now=now)
        invoice = str(recent[recent["account_id"].astype(str) == accounts[3]]
                      ["invoice_id"].iloc[0])
        bodies = [
            PromiseIn(kind="promise", promised_date=AS_OF + timedelta(days=5), amount=10.0),
            SnoozeIn(kind="snooze", until=AS_OF + timedelta(days=10)),
            ContactIn(kind="contact", channel="phone", outcome="reached",
                      contact_date=AS_OF - timedelta(days=2)),
            DisputeOpenedIn(kind="dispute_opened", invoice_id=invoice, reason="pricing"),
        ]
        for account, body in zip(accounts, bodies, strict=False):
            record_event(engine, body, facts=AccountFacts(account_id=account, open_balance=1e9,
                                                          invoice_ids=None),
                         user=user, now=now)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def single(trained_state, env, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Path, dict[str, Any]]:
    """The staged book (validated, one duplicated invoice id quarantined) and what the
    single-process run published."""
    root = tmp_path_factory.mktemp("single")
    book = trained_state.book
    inv = book.invoices
    parts = partition_of(inv["account_id"].astype(str), 2)
    a, b = inv.index[parts == 0][0], inv.index[parts == 1][0]
    clash = inv.loc[[b]].assign(invoice_id=inv.at[a, "invoice_id"])  # same id, other account
    data = root / "book"
    write_book(type(book).from_frames(pd.concat([inv, clash], ignore_index=True),
                                      book.payments, book.accounts, book.disputes), data)
    settings = load_settings(data_dir=root / "state")
    staged = steps.ingest(settings=settings, source=data)
    rules = {r["table"]: r for r in staged.tables}
    assert rules["invoices"]["quarantined"] >= 2  # both copies of the clashing id
    _record_events(settings, inv)
    summary = steps.score(settings=settings, book=staged.staged, as_of=AS_OF)
    assert summary.n_scored > 50
    got = _published(settings)
    # the run carries the loop's holds, the holdout and the challenger's shadow scores
    assert set(got["worklist"]["hold"].dropna()) >= {"promise", "snooze"}, got["meta"]
    assert got["meta"]["holdout"]["early_warning"] > 0
    assert set(got["shadow"]["role"]) == {"challenger", "holdout"}
    assert len(got["drift"]) > 10  # the champions' PSI checks (summed bin counts on Dask)
    return staged.staged, got


def _published(settings) -> dict[str, Any]:
    """The current run's worklist, drift, shadow scores and meta, in comparable order."""
    with WorklistStore(settings.resolved_store_url) as store:
        run = store.current_run()
        assert run is not None and run.as_of == AS_OF
        worklist = store.read_worklist(as_of=AS_OF)[COMPARED]
        drift = store.read_drift(run.run_id)
    meta = run.meta or {}
    shadow = pd.read_parquet(meta["shadow"]["path"])
    kpis = {k: v for k, v in meta["kpis"].items() if k != "seconds"}
    worklist["hold"] = worklist["hold"].where(worklist["hold"] != "None")
    return {"worklist": worklist,
            "drift": drift.sort_values(["model", "feature"], ignore_index=True),
            "shadow": shadow.sort_values(["role", "model", "account_id"], ignore_index=True),
            "meta": {k: meta.get(k) for k in META}, "kpis": kpis,
            "shadow_meta": {k: v for k, v in meta["shadow"].items() if k != "path"}}


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    pd.testing.assert_frame_equal(got["worklist"], want["worklist"])
    # drift: the PSI of the summed bin counts, the same as the whole book's
    pd.testing.assert_frame_equal(got["drift"], want["drift"])
    pd.testing.assert_frame_equal(got["shadow"], want["shadow"])
    assert got["meta"] == want["meta"]
    assert got["kpis"] == want["kpis"]
    assert got["shadow_meta"] == want["shadow_meta"]


def _score_on_dask(staged: Path, state: Path, **overrides: Any) -> dict[str, Any]:
    """Score with 2 partitions through the score flow (Prefect tasks on DaskTaskRunner)."""
    from pipelines.flows import score_flow

    settings = {"data_dir": str(state), "partitions": 2, **overrides}
    summary = score_flow(book_path=str(staged), as_of=AS_OF, settings=settings)
    assert summary.status == "succeeded", summary.message
    return _published(load_settings(**settings))


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.mark.slow
def test_a_local_cluster_with_a_worker_killed_gives_the_single_process_run(
        single, env, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    staged, want = single
    marker = tmp_path / "died"
    # started after the Prefect API is exported and numba's cache is warm (single)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        # the hook in the workers' environment (a restarted worker starts without it)
        client.run(_set_env, DIE_AFTER_PART_ENV, str(marker))
        got = _score_on_dask(staged, tmp_path / "state",
                             dask_scheduler=cluster.scheduler_address)
    assert marker.exists()  # a worker did die after writing its first partition's files
    assert (tmp_path / "state" / "work" / f"score-{AS_OF}" / "book" / "part-00001").is_dir()
    _same(got, want)


def test_the_default_cluster_is_local_worker_processes() -> None:
    from pipelines.partitioned import dask_task_runner, partition_runner

    runner = dask_task_runner(load_settings(partitions=2))
    assert runner.cluster_class == "distributed.LocalCluster"
    assert runner.cluster_kwargs["processes"] is True
    assert runner.cluster_kwargs["dashboard_address"] == ":0"
    assert dask_task_runner(load_settings(partitions=2, dask_scheduler="tcp://h:8786")
                            ).address == "tcp://h:8786"
    assert partition_runner(load_settings(partitions=1)) is None


@pytest.mark.slow
def test_separate_scheduler_and_workers_give_the_same_run(single, env, tmp_path: Path) -> None:
    staged, want = single
    dask = str(Path(sys.executable).with_name("dask"))
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(sched_file),
                               "--port", "0", "--dashboard-address", ":0", "--no-show"],
                              cwd=tmp_path, env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 30
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), "the dask scheduler did not start"
        for k in range(2):
            folder = tmp_path / f"worker{k}"
            folder.mkdir()
            procs.append(subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                 "--nworkers", "1", "--no-dashboard", "--local-directory", str(folder)],
                cwd=folder, env=os.environ.copy(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        address = json.loads(sched_file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        got = _score_on_dask(staged, tmp_path / "state", dask_scheduler=address,
                             work_location=str(tmp_path / "shared-work"))
        assert (tmp_path / "shared-work" / f"score-{AS_OF}" / "book").is_dir()
        _same(got, want)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
