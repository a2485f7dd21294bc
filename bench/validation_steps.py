"""Benchmark: where validation's time and memory go, step by step and table by table.

    python -m bench.validation_steps DIR [--interval 0.02] [--json PATH]

Runs :func:`features.contract.validation.validate_folder` on the data folder ``DIR``
(quarantine files to a temporary folder, never into ``DIR``) while a thread samples, every
``--interval`` seconds, the process's RSS and CPU time and the main thread's stack: each
interval is charged to (table being validated, innermost validation step on the stack,
:data:`STEPS`). Wall and CPU seconds are sample sums (± one interval per row), the peak
RSS the highest sample in the row; ``ru_maxrss`` is the process's true peak. The RSS
after the call is what the result (the Book and the quarantine) holds. No product code
is instrumented, so a before and an after are measured alike (run the before from a
checkout of main with ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.nightly import current_rss_mb

#: (file suffix, function name) -> step label; the innermost match on the stack wins.
STEPS: dict[tuple[str, str], str] = {
    ("features/contract/io.py", "read_source"): "read file",
    ("features/contract/raw_checks.py", "to_polars"): "to polars",
    ("features/contract/raw_checks.py", "check_columns"): "whole-file checks",
    ("features/contract/raw_checks.py", "check_types"): "whole-file checks",
    ("features/contract/raw_checks.py", "check_currency"): "whole-file checks",
    ("features/contract/parsing.py", "parse_columns"): "parse",
    ("features/contract/rules.py", "row_local_rules"): "row rules",
    ("features/contract/rules.py", "_duplicates"): "duplicates",
    ("features/contract/rules.py", "child_rules"): "parent rules",
    ("features/contract/rules.py", "event_rules"): "parent rules",
    ("features/contract/rules.py", "parents_of"): "parent rules",
    ("features/contract/held_out.py", "flag"): "held out",
    ("features/contract/rules.py", "decoded"): "bad rows",
    ("features/contract/canonical.py", "canonical"): "canonical",
    ("features/contract/canonical.py", "is_sorted"): "canonical: sorted?",
    ("features/contract/rules.py", "with_account_codes"): "account codes",
    ("features/contract/canonical.py", "account_dtype"): "account codes",
    ("features/contract/credits.py", "payment_credits"): "credits",
    ("features/contract/credits.py", "credit_notes"): "credits",
    ("features/contract/plausibility.py", "unknown_warning"): "warnings",
    ("features/contract/plausibility.py", "bare_warning"): "warnings",
    ("features/contract/canonical.py", "with_bare_accounts"): "bare accounts",
    ("features/contract/canonical.py", "to_pandas"): "to pandas",
    ("features/contract/validation.py", "_quarantine"): "quarantine rows",
    ("features/contract/held_out.py", "hold_out"): "hold out",
    ("features/contract/validation.py", "write_quarantine"): "write quarantine",
}
_VALIDATE = ("features/contract/validation.py", "_validate")


def _usage() -> tuple[float, float, int]:
    """The process's (user CPU s, system CPU s, minor page faults) so far. Why the faults:
    each is a page touched for the first time since it was mapped (or handed back to the
    OS and mapped again), and at 300k accounts they made half of validation's CPU."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


class StepSampler:
    """(table, step) -> wall s, CPU s (of which system), thousands of minor page faults,
    peak RSS MB, sampled from a thread."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.main = threading.main_thread().ident
        self.rows: dict[tuple[str, str], dict[str, float]] = {}
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _where(self) -> tuple[str, str]:
        frame = sys._current_frames().get(self.main)
        step, table = None, "-"
        while frame is not None:
            code = frame.f_code
            key = (code.co_name, code.co_filename)
            if step is None:
                for (suffix, name), label in STEPS.items():
                    if key[0] == name and key[1].endswith(suffix):
                        step = label
                        break
            if key[0] == _VALIDATE[1] and key[1].endswith(_VALIDATE[0]):
                table = str(frame.f_locals.get("table", "-"))
                step = step or "other (in _validate)"
                break
            frame = frame.f_back
        return table if step != "write quarantine" else "-", step or "other"

    def _run(self) -> None:
        last_t, last = time.perf_counter(), _usage()
        while not self._stop.wait(self.interval):
            where = self._where()
            rss = current_rss_mb()
            now, usage = time.perf_counter(), _usage()
            row = self.rows.setdefault(where, {"wall_s": 0.0, "cpu_s": 0.0, "sys_s": 0.0,
                                               "faults_k": 0.0, "peak_rss_mb": 0.0})
            row["wall_s"] += now - last_t
            row["cpu_s"] += usage[0] + usage[1] - last[0] - last[1]
            row["sys_s"] += usage[1] - last[1]
            row["faults_k"] += (usage[2] - last[2]) / 1000
            row["peak_rss_mb"] = max(row["peak_rss_mb"], rss)
            self.peak = max(self.peak, rss)
            last_t, last = now, usage

    def __enter__(self) -> StepSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(folder: str, *, interval: float = 0.02) -> dict[str, Any]:
    """Validate ``folder`` under the sampler; returns the figures."""
    import features.contract.validation as validation

    rss0 = current_rss_mb()
    with tempfile.TemporaryDirectory(prefix="delinq-bench-valsteps-") as qdir:
        usage0, t0 = _usage(), time.perf_counter()
        with StepSampler(interval) as sampler:
            result = validation.validate_folder(folder, quarantine_dir=qdir,
                                                accept_anomalies=True)
        seconds, usage = time.perf_counter() - t0, _usage()
    cpu = usage[0] + usage[1] - usage0[0] - usage0[1]
    held = current_rss_mb()
    out = {
        "module": validation.__file__,
        "invoices": len(result.book.invoices),
        "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
        "sys_seconds": round(usage[1] - usage0[1], 2),
        "minor_faults_k": round((usage[2] - usage0[2]) / 1000, 1),
        "rss_before_mb": round(rss0, 1), "rss_after_mb": round(held, 1),
        "peak_rss_sampled_mb": round(sampler.peak, 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps": [{"table": t, "step": s, **{k: round(v, 2) for k, v in r.items()}}
                  for (t, s), r in sampler.rows.items()],
    }
    del result
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    r = run(args.folder, interval=args.interval)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(r, indent=2))
    print(f"validate_folder ({r['module']}): {r['invoices']:,} invoices kept, "
          f"{r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU ({r['sys_seconds']:.1f} s "
          f"system, {r['minor_faults_k']:,.0f}k page faults); RSS before "
          f"{r['rss_before_mb']:,.0f} MB, peak {r['peak_rss_sampled_mb']:,.0f} MB sampled "
          f"({r['ru_maxrss_mb']:,.0f} MB ru_maxrss), after {r['rss_after_mb']:,.0f} MB")
    print(f"{'table':<10} {'step':<22} {'wall s':>7} {'CPU s':>7} {'sys s':>6} "
          f"{'faults k':>8} {'peak RSS MB':>12}")
    for row in r["steps"]:
        print(f"{row['table']:<10} {row['step']:<22} {row['wall_s']:>7.2f} "
              f"{row['cpu_s']:>7.2f} {row['sys_s']:>6.2f} {row['faults_k']:>8,.0f} "
              f"{row['peak_rss_mb']:>12,.0f}")


if __name__ == "__main__":
    main()
