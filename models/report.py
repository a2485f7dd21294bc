"""The training report: per model, metrics beside the baselines and the registry outcome.

:func:`training_summary` turns what :func:`models.train.train_models` and
:func:`models.registry.register` returned into plain, JSON-safe data (for run artifacts);
:func:`format_report` prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from models.evaluate import format_metrics_table
from models.slices import flagged_lines, slice_metrics
from models.train import TrainingFailure, TrainingResult

if TYPE_CHECKING:
    from models.registry import RegistrationResult


def training_summary(
    results: Mapping[str, TrainingResult | TrainingFailure],
    registrations: Mapping[str, RegistrationResult],
) -> dict[str, dict[str, Any]]:
    """``{kind: {registered_name, version, promoted, champion_version, reason, run_id,
    metrics (the LightGBM row), metrics_table ({scorer: {metric: value}}), data_window,
    n_rows, evidence, calibration (method, bounds), gate_passed, gate (the gate's one
    line), slices (``models.slices``: the test period per segment, region, size and tenure
    band, model beside the aging rule)}}``, or ``{kind: {error}}`` for a kind
    that could not be trained."""
    summary: dict[str, dict[str, Any]] = {}
    for kind, result in results.items():
        if isinstance(result, TrainingFailure):
            summary[kind] = {"error": result.error}
            continue
        reg = registrations[kind]
        summary[kind] = {
            "registered_name": reg.registered_name,
            "version": reg.version,
            "promoted": reg.promoted,
            "champion_version": reg.champion_version,
            "reason": reg.reason,
            "run_id": reg.run_id,
            "metrics": {k: float(v) for k, v in result.metrics.loc["lightgbm"].items()},
            "metrics_table": {str(s): {k: float(v) for k, v in row.items()}
                              for s, row in result.metrics.iterrows()},
            "data_window": dict(result.data_window),
            "n_rows": dict(result.n_rows),
            "evidence": {k: dict(v) for k, v in result.evidence.items()},
            "calibration": _calibration(result),
            "gate_passed": None if reg.gate is None else reg.gate.passed,
            "gate": "" if reg.gate is None else reg.gate.reason,
            "slices": _slices(result),
        }
    return summary


def _slices(result: TrainingResult) -> list[dict[str, Any]]:
    """The test period per customer segment, region, size and tenure band, the model
    beside the aging rule as served (its probability on the test period, the gate's
    baseline; ``models.slices``), JSON-safe (NaN as None)."""
    rule = result.baseline_scores.get("aging_rule")
    table = slice_metrics(result.test, probability=result.test_scores.proba,
                          rule_probability=None if rule is None else rule.proba)
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in table.to_dict(orient="records")]


def _calibration(result: TrainingResult) -> dict[str, Any]:
    cal = result.model.calibrator
    low, high = cal.bounds
    return {"method": cal.method, "low": low, "high": high,
            "n_rows": int(cal.params.get("n_rows", result.n_rows.get("val", 0)))}


def format_report(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """The printed training report: per model, the metrics table (model vs baselines) on
    the test period, the registered version and whether it was promoted."""
    blocks = []
    for model, info in summary.items():
        if "error" in info:
            blocks.append(f"{model}: not trained ({info['error']})")
            continue
        table = pd.DataFrame.from_dict(dict(info["metrics_table"]), orient="index")
        w = info.get("data_window", {})
        n = info.get("n_rows", {})
        title = (f"{model}: test period {w.get('test_start')}..{w.get('test_end')} "
                 f"({n.get('test', '?')} rows; trained on {n.get('train', '?')} rows "
                 f"{w.get('train_start')}..{w.get('train_end')})")
        champion = info.get("champion_version")
        status = "promoted to champion" if info["promoted"] else (
            f"challenger (champion stays v{champion})" if champion else
            "challenger (no champion)")
        ev = info.get("evidence", {})
        if ev:
            title += "\n  positives per period: " + ", ".join(
                f"{p} {e['positive_rows']:,} of {e['rows']:,} rows ({e['positive_accounts']:,} "
                "accounts)" for p, e in ev.items())
        cal = info.get("calibration")
        if cal:
            title += (f"\n  calibration: {cal['method']} on {cal['n_rows']:,} validation rows; "
                      f"probabilities bounded to {100 * cal['low']:.3g}%..{100 * cal['high']:.4g}%")
        flagged = flagged_lines(info.get("slices") or [], model=model)
        blocks.append(
            format_metrics_table(table, title=title)
            + f"\n  registered {info['registered_name']} v{info['version']}: {status}"
            + f"\n  {info['reason']}"
            + "".join(f"\n  slice: {line}" for line in flagged)
        )
    return "\n\n".join(blocks)
