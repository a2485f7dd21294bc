"""Benchmark: the nightly from files to a published store, through the steps layer.

    python -m bench.nightly --accounts 100000 [--json PATH] [--train-accounts N]
    python -m bench.nightly --book DIR [--json PATH]     # a book written beforehand
    python -m bench.nightly --book DIR --timeline T.csv  # every sample: where a peak falls

Issue 20's target: 1M accounts / 50M invoices, read, validate, plausibility checks,
features, scoring, explanations, reasons, KPIs and the store write under 60 s and 6 GB
peak on 2 cores (measure the whole process with ``/usr/bin/time -v``). Steps:

1. train both models (quick LightGBM settings) on a small book and register them as
   champions in a throw-away MLflow store (not timed). With the default 3,000 training
   accounts the early-warning model fails the quality gate, so the aging rule ranks its
   population (most accounts: no TreeSHAP, the rule's reasons) and the failed model is
   only shadow-scored; ``--train-accounts 20000`` gates both models (at 300k accounts,
   session 14 under load: explain and reasons ~4.5 CPU s more, rule and shadow scoring
   ~2.8 less, peak +0.7 GB). The output's ``ranked_by`` says which it was;
2. write the book to score (``--accounts``, ~50 invoices per account) as Parquet (not
   timed), or take the folder ``--book`` (e.g. ``delinq generate --accounts 1000000
   --out DIR``);
3. time :func:`pipelines.steps.ingest` then :func:`pipelines.steps.score` as of the day
   after the book's last event, as the nightly flow runs them (the run's ``seconds``);
   then the flow's steps after the publish, retention (``steps.prune``) and the live
   evaluation of past runs (``steps_live.evaluate_live``: in this fresh store no run is
   due, so its cost is getting the book: from memory, or the staged files if the score
   step let it go), timed apart (``after_publish_seconds``) but inside the peaks, which
   are the whole nightly's. Dunning is off by default (the issue times it apart).

Steps 1 and 2 run in a child process, so nothing they allocate (the generator's arrays,
LightGBM, MLflow's caches) stays in the measured process: ``peak_rss_self_mb`` is this
process's own ``ru_maxrss``, the nightly's peak. ``/usr/bin/time -v`` reports the largest
of the process and its children, which includes the book generation's peak: for the
nightly's peak alone with ``/usr/bin/time -v``, write the book first with ``delinq
generate`` and pass ``--book``.

Per-stage figures come from a sampling profiler (every ``--interval`` seconds a thread
reads the process's RSS and CPU time and the main thread's stack, and charges the interval
to the innermost known stage on the stack, :data:`STAGES`): wall and CPU seconds are
sample sums (±one interval per stage), peak RSS the highest sample in the stage. No
product code is instrumented, so before and after a change are measured alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: (file suffix, function name) -> stage label; the innermost match on the stack wins.
STAGES: dict[tuple[str, str], str] = {
    ("features/contract/io.py", "read_source"): "read files",
    ("features/contract/validation.py", "_validate"): "validate",
    ("features/contract/validation.py", "write_quarantine"): "validate",
    ("features/contract/canonical.py", "to_pandas"): "validate: to book",
    ("features/contract/io.py", "write_staged_book"): "stage book (write)",
    ("pipelines/steps_ingest.py", "wait_staged"): "stage book (wait)",
    ("pipelines/steps.py", "read_book"): "read staged book",
    ("pipelines/steps_ingest.py", "read_book"): "read staged book",
    ("pipelines/steps.py", "reap_stale_runs"): "store: open",
    ("pipelines/steps_score.py", "reap_stale_runs"): "store: open",
    ("features/pit/snapshot.py", "snapshot"): "snapshot",
    ("pipelines/run_checks.py", "run_meta_of_totals"): "plausibility",
    ("features/pit/kpis.py", "kpi_part"): "kpis",
    ("features/pit/kpis.py", "merge_kpi_parts"): "kpis",
    ("serving/partitioned.py", "merge_partitions"): "merge partitions",
    ("features/pit/_prep.py", "prepare"): "prepare",
    ("features/pit/_kernels.py", "features_frame"): "features",
    ("serving/rule_scoring.py", "resolve_scorers"): "load models",
    ("models/model.py", "explain"): "explain",
    ("serving/reasons.py", "reason_codes"): "reasons",
    ("serving/score.py", "_explanations"): "explanations",
    ("serving/score.py", "_drift"): "drift",
    ("serving/score_worklist.py", "worklist_frame"): "worklist",
    ("serving/store.py", "write_run"): "store write",
    ("serving/store.py", "begin_run"): "store: open",
    # what used to be "other" (issue 20's 1M profile: 54 s unattributed)
    ("pipelines/steps_ingest.py", "_remember"): "stage book (fingerprint)",
    ("pipelines/steps_ingest.py", "_handed"): "read staged book",
    ("pipelines/steps_ingest.py", "_replace_dir"): "stage book (swap)",
    ("features/contract/validation.py", "render"): "validate: summary",
    ("serving/loop_events.py", "read_loop_events"): "store: read events",
    ("serving/loop_events.py", "book_with_events"): "loop events",
    ("serving/loop_worklist.py", "loop_facts"): "loop facts",
    ("serving/rule_scoring.py", "rule_part"): "rule scoring",
    ("serving/score.py", "score_book"): "score (other)",
    ("serving/score_run.py", "score_into_store"): "store (other)",
    ("serving/score_run.py", "_run_into_store"): "store (other)",
    ("serving/store.py", "read_worklist"): "store: read",
    ("serving/store.py", "read_drift"): "store: read",
    ("pipelines/steps_shadow.py", "watch_run"): "watch (shadow, drift)",
    ("serving/shadow.py", "shadow_scores"): "shadow scores",
    ("pipelines/steps_score.py", "score"): "score step (other)",
    ("pipelines/steps_ingest.py", "ingest"): "ingest step (other)",
    ("pipelines/steps_score.py", "prune"): "after: prune",
    ("pipelines/steps_live.py", "evaluate_live"): "after: live evaluation",
}
#: Label of a sample taken while a module is being imported (innermost frame ``<module>``).
IMPORTS = "imports"
#: The checkout's root (with a trailing slash): frames under it are the project's.
_ROOT = str(Path(__file__).resolve().parents[1]) + "/"
#: Stages whose label includes the enclosing stage (who paid for it).
NESTED = {"prepare", "features"}


def current_rss_mb() -> float:
    """This process's resident memory now (MB; ``bench.score._rss_mb`` is its peak)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Sampler:
    """Samples (stage, RSS, CPU) of the process from a thread every ``interval`` s."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.main = threading.main_thread().ident
        self.rows: dict[str, dict[str, float]] = {}
        self.order: list[str] = []
        self.peak = 0.0
        #: "other" samples by the innermost project frames on the stack (who to attribute)
        self.other: dict[str, float] = {}
        #: every sample as (seconds since start, RSS MB, stage, staged write running):
        #: where in time a peak falls, and whether the write was beside it (``--timeline``)
        self.timeline: list[tuple[float, float, str, bool]] = []
        from pipelines.steps_ingest import STAGING_THREAD  # (run() imported it already)

        self._writer = STAGING_THREAD
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _stage(self) -> tuple[str, str]:
        frame = sys._current_frames().get(self.main)
        found: list[str] = []
        ours: list[str] = []  # the project's frames, innermost first (for "other")
        while frame is not None:
            code = frame.f_code
            if code.co_name == "<module>" and frame.f_globals.get("__name__") != "__main__":
                found.append(IMPORTS)
            for (suffix, name), label in STAGES.items():
                if code.co_name == name and code.co_filename.endswith(suffix):
                    found.append(label)
                    break
            if code.co_filename.startswith(_ROOT) and "/.venv/" not in code.co_filename:
                ours.append(f"{code.co_filename[len(_ROOT):]}:{code.co_name}")
            frame = frame.f_back
        if not found:
            return "other", " < ".join(ours[:3])
        inner = found[0]
        if inner in NESTED:
            outer = next((f for f in found[1:] if f not in NESTED), None)
            return (f"{outer} > {inner}" if outer else inner), ""
        return inner, ""

    def _run(self) -> None:
        last_t, last_cpu = time.perf_counter(), sum(os.times()[:2])
        start = last_t
        while not self._stop.wait(self.interval):
            stage, where = self._stage()
            rss = current_rss_mb()
            now, cpu = time.perf_counter(), sum(os.times()[:2])
            if stage == "other":
                self.other[where] = self.other.get(where, 0.0) + now - last_t
            row = self.rows.get(stage)
            if row is None:
                row = self.rows[stage] = {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0}
                self.order.append(stage)
            row["wall_s"] += now - last_t
            row["cpu_s"] += cpu - last_cpu
            row["peak_rss_mb"] = max(row["peak_rss_mb"], rss)
            self.peak = max(self.peak, rss)
            writing = any(t.name == self._writer for t in threading.enumerate())
            self.timeline.append((round(now - start, 3), round(rss, 1), stage, writing))
            last_t, last_cpu = now, cpu

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def table(self) -> list[dict[str, Any]]:
        return [{"stage": s, **{k: round(v, 2) for k, v in self.rows[s].items()}}
                for s in self.order]


def _setup(tracking_uri: str, train_accounts: int, seed: int, accounts: int,
           book: str | None) -> None:
    """Steps 1 and 2 (run in a child process): register the champions, write the book."""
    from bench.score import _train
    from features.synthetic import write_book_folder

    _train(train_accounts, tracking_uri, seed)
    if book is not None:
        write_book_folder(accounts, book, seed=seed)


def run(accounts: int = 100_000, json_path: str | None = None, *, seed: int = 0,
        train_accounts: int = 3_000, interval: float = 0.01, book: str | None = None,
        timeline: str | None = None) -> dict:
    """Run the benchmark; returns (and optionally writes as JSON) the figures. ``book``: an
    existing book folder to ingest (``accounts`` is then ignored); ``timeline``: a CSV
    file to write every sample to (seconds, RSS MB, stage, whether the staged book's
    write was running)."""
    from datetime import timedelta

    from pipelines import steps
    from pipelines.settings import Settings
    from pipelines.steps_live import evaluate_live

    tmp = Path(tempfile.mkdtemp(prefix="delinq-bench-nightly-"))
    try:
        settings = Settings(data_dir=tmp / "data", early_warning_model="bench-early-warning",
                            persistence_model="bench-persistence", seed=seed)
        settings.data_dir.mkdir(parents=True)
        source = Path(book) if book is not None else tmp / "book"
        # A fresh interpreter (not fork: nothing of this process is copied into it).
        args = (settings.resolved_tracking_uri, train_accounts, seed, accounts,
                None if book is not None else str(source))
        subprocess.run([sys.executable, "-c", f"from bench.nightly import _setup; _setup{args!r}"],
                       cwd=_ROOT, check=True)
        cpu0, t0 = sum(os.times()[:2]), time.perf_counter()
        with Sampler(interval) as sampler:
            # as the nightly flow: the staged files written beside the scoring
            ingested = steps.ingest(settings=settings, source=source, background=True)
            as_of = ingested.last_date + timedelta(days=1)
            scored = steps.score(settings=settings, book=ingested.staged, as_of=as_of)
            seconds, cpu = time.perf_counter() - t0, sum(os.times()[:2]) - cpu0
            # the flow's steps after the publish (dunning is off by default, timed apart)
            steps.prune(settings=settings, today=as_of)
            evaluate_live(settings=settings, book=ingested.staged)
        after_s, after_cpu = time.perf_counter() - t0 - seconds, (
            sum(os.times()[:2]) - cpu0 - cpu)
        from bench.score import _rss_mb as peak_rss_mb  # after the timed run (not in it)

        result = {
            "accounts": ingested.accounts,
            "invoices": ingested.invoices,
            "scored": scored.n_scored,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "after_publish_seconds": round(after_s, 2),
            "after_publish_cpu_seconds": round(after_cpu, 2),
            "peak_rss_sampled_mb": round(sampler.peak, 1),
            "peak_rss_self_mb": round(peak_rss_mb(), 1),
            "stages": sampler.table(),
            "other_by_caller": {k: round(v, 2) for k, v in sorted(
                sampler.other.items(), key=lambda kv: -kv[1])[:15]},
            "top_account_ids": [r["account_id"] for r in scored.top],
            # who ranked each population: a quick champion that fails the quality gate
            # leaves its population to the aging rule (no TreeSHAP, the rule's reasons)
            "ranked_by": {"early_warning": scored.early_warning_version,
                          "persistence": scored.persistence_version},
            "rule_lines": list(scored.rule_lines),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2, default=str))
    if timeline:
        lines = [f'{t},{rss},"{stage}",{int(w)}' for t, rss, stage, w in sampler.timeline]
        Path(timeline).write_text("seconds,rss_mb,stage,staged_write\n" + "\n".join(lines))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-accounts", type=int, default=3_000)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--book", default=None,
                        help="an existing book folder to ingest instead of writing one")
    parser.add_argument("--timeline", default=None,
                        help="a CSV file to write every sample to (where the peak falls)")
    args = parser.parse_args(argv)
    r = run(args.accounts, args.json_path, seed=args.seed, train_accounts=args.train_accounts,
            interval=args.interval, book=args.book, timeline=args.timeline)
    print(f"nightly: {r['accounts']:,} accounts, {r['invoices']:,} invoices, "
          f"{r['scored']:,} scored: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU, "
          f"peak RSS (sampled) {r['peak_rss_sampled_mb']:,.0f} MB, "
          f"(this process's ru_maxrss) {r['peak_rss_self_mb']:,.0f} MB; then prune and live "
          f"evaluation {r['after_publish_seconds']:.1f} s wall, "
          f"{r['after_publish_cpu_seconds']:.1f} s CPU (in the peaks)")
    print("ranked by: " + ", ".join(
        f"{k} {v if v == 'aging_rule' else f'champion v{v}'}" for k, v in r["ranked_by"].items())
          + " (aging_rule: no gated champion; --train-accounts 20000 gates both)")
    print(f"{'stage':<34} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    for row in r["stages"]:
        print(f"{row['stage']:<34} {row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} "
              f"{row['peak_rss_mb']:>12,.0f}")
    if r["other_by_caller"]:
        print("'other' by the innermost project frames (wall s):")
        for where, secs in r["other_by_caller"].items():
            print(f"  {secs:>8.2f}  {where or '(no project frame)'}")


if __name__ == "__main__":
    main()
