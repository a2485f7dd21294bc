"""Benchmark: exact TreeSHAP (models.treeshap) vs LightGBM pred_contrib vs shap.

Trains (seeded) a 500-tree, 31-leaf, depth-6 binary LightGBM model on 60 synthetic
features, then times our explainer, ``booster.predict(pred_contrib=True)`` and
``shap.TreeExplainer(booster).shap_values`` on the same rows in the same run. The two
baselines are timed on the first ``baseline_rows`` rows and extrapolated (their cost is
linear in rows). A second model without a depth cap exercises the per-tree fallback.

    python -m bench.explain --rows 20000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

N_FEATURES = 60
N_TRAIN = 50_000
N_TREES = 500
BASELINE_ROWS = 2000


def synthetic_features(n: int, seed: int) -> np.ndarray:
    """(n, 60) float64: normals, skewed amounts, counts with zeros, ~5% NaN in a third."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, N_FEATURES))
    X[:, :20] = rng.normal(size=(n, 20))
    X[:, 20:40] = rng.lognormal(mean=0.0, sigma=1.0, size=(n, 20))
    X[:, 40:60] = rng.poisson(lam=1.5, size=(n, 20)).astype(np.float64)
    nan_cols = np.arange(0, N_FEATURES, 3)
    X[:, nan_cols] = np.where(rng.random((n, nan_cols.size)) < 0.05, np.nan, X[:, nan_cols])
    return X


def synthetic_target(X: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Z = np.nan_to_num(X)
    logit = (
        0.8 * Z[:, 0] - 0.6 * Z[:, 1] + 0.5 * np.sin(2 * Z[:, 2]) + 0.4 * Z[:, 3] * Z[:, 4]
        + 0.3 * np.log1p(Z[:, 20]) - 0.3 * (Z[:, 40] > 2) + 0.1 * Z[:, 5:20].sum(axis=1)
        + 0.5 * np.isnan(X[:, 0]) - 1.0
    )
    return (rng.random(X.shape[0]) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)


def train_model(max_depth: int, seed: int = 0, cache: bool = True) -> lgb.Booster:
    """The benchmark model (deterministic); cached as a model file in the temp dir."""
    path = Path(tempfile.gettempdir()) / f"delinq_bench_explain_d{max_depth}_s{seed}.txt"
    if cache and path.exists():
        return lgb.Booster(model_file=str(path))
    X = synthetic_features(N_TRAIN, seed)
    y = synthetic_target(X, seed + 1)
    params = dict(
        objective="binary", num_leaves=31, max_depth=max_depth, learning_rate=0.05,
        max_bin=63, min_data_in_leaf=20, feature_fraction=0.8, bagging_fraction=0.8,
        bagging_freq=1, seed=seed, num_threads=2, verbose=-1, deterministic=True,
        force_row_wise=True,
    )
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=N_TREES)
    if cache:
        booster.save_model(str(path))
    return booster


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("inf")


def _jit_seconds() -> float:
    """Compile (or load from numba's cache) every kernel on a tiny model."""
    from models.treeshap import TreeExplainer

    X = synthetic_features(500, 99)
    tiny = lgb.train(
        dict(objective="binary", num_leaves=4, verbose=-1, num_threads=1),
        lgb.Dataset(X, synthetic_target(X, 98)), 2,
    )
    t0 = time.perf_counter()
    TreeExplainer(tiny).shap_values(X[:10])
    TreeExplainer(tiny, table_budget_mb=0).shap_values(X[:10])  # fallback path
    return time.perf_counter() - t0


def _measure(booster: lgb.Booster, X: np.ndarray, with_shap: bool) -> dict[str, Any]:
    from models.treeshap import TreeExplainer

    rows = X.shape[0]
    nb = min(rows, BASELINE_ROWS)
    ex = TreeExplainer(booster)
    # best of a few repetitions for both sides: the machine may be shared
    ours_s = ours_cpu = float("inf")
    for _ in range(3 if rows <= 100_000 else 1):
        c0, w0 = time.process_time(), time.perf_counter()
        ours = ex.contributions(X)
        ours_s = min(ours_s, time.perf_counter() - w0)
        ours_cpu = min(ours_cpu, time.process_time() - c0)
    pc_s = float("inf")
    for _ in range(2):
        w0 = time.perf_counter()
        ref = booster.predict(X[:nb], pred_contrib=True)
        pc_s = min(pc_s, time.perf_counter() - w0)
    res: dict[str, Any] = {
        "rows": rows,
        "baseline_rows": nb,
        "ours_seconds": ours_s,
        "ours_cpu_seconds": ours_cpu,
        "ours_rows_per_s": _rate(rows, ours_s),
        "pred_contrib_rows_per_s": _rate(nb, pc_s),
        "speedup": _rate(rows, ours_s) / _rate(nb, pc_s),
        "max_abs_diff": float(np.abs(ours[:nb] - ref).max()),
        "additivity_max_abs_err": float(
            np.abs(ours[:nb].sum(axis=1) - booster.predict(X[:nb], raw_score=True)).max()
        ),
        "precompute_seconds": ex.precompute_seconds,
        "table_mb": ex.table_bytes / 2**20,
        "n_trees": ex.n_trees,
        "n_fallback_trees": ex.n_fallback_trees,
        "n_direct_leaves": ex.n_direct_leaves,
        # CPU-bound estimate for a machine shared with other work: rows per CPU second
        "ours_rows_per_cpu_s": _rate(rows, ours_cpu),
    }
    if with_shap:
        import shap

        w0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # list-output notice for binary
            sv = shap.TreeExplainer(booster).shap_values(X[:nb])
        res["shap_rows_per_s"] = _rate(nb, time.perf_counter() - w0)
        sv = np.asarray(sv[1] if isinstance(sv, list) else sv)
        res["shap_max_abs_diff"] = float(np.abs(ours[:nb, :-1] - sv).max())
    return res


def run(
    rows: int = 20000, json_path: str | os.PathLike[str] | None = None, deep: bool = True
) -> dict:
    """Run the benchmark; returns (and optionally writes) the JSON-able result dict."""
    load_before = os.getloadavg()[0]
    jit_s = _jit_seconds()
    t0 = time.perf_counter()
    booster = train_model(max_depth=6)
    train_s = time.perf_counter() - t0
    X = synthetic_features(rows, seed=12345)
    result: dict[str, Any] = {
        "model": {"trees": N_TREES, "num_leaves": 31, "max_depth": 6, "features": N_FEATURES},
        "train_seconds": train_s,
        "jit_seconds": jit_s,
        **_measure(booster, X, with_shap=True),
    }
    if deep:
        deep_booster = train_model(max_depth=-1)
        d = _measure(deep_booster, X[: min(rows, 20000)], with_shap=False)
        from models.treeshap import TreeExplainer

        # all trees through the fallback (tables disabled), same rows
        ex0 = TreeExplainer(deep_booster, table_budget_mb=0)
        Xd = X[: min(rows, 5000)]
        w0 = time.perf_counter()
        out0 = ex0.contributions(Xd[:BASELINE_ROWS])
        fb_s = time.perf_counter() - w0
        nb = min(BASELINE_ROWS, Xd.shape[0])
        d["all_fallback"] = {
            "rows": nb,
            "rows_per_s": _rate(nb, fb_s),
            "speedup": _rate(nb, fb_s) / d["pred_contrib_rows_per_s"],
            "max_abs_diff": float(
                np.abs(out0 - deep_booster.predict(Xd[:nb], pred_contrib=True)).max()
            ),
            "n_fallback_trees": ex0.n_fallback_trees,
        }
        result["deep"] = d
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_avg_1m_before"] = load_before
    result["load_avg_1m_after"] = os.getloadavg()[0]
    result["cpu_count"] = os.cpu_count()
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=2)
    _print_summary(result)
    return result


def _print_summary(r: dict) -> None:
    print(
        f"TreeSHAP, {r['rows']} rows, 500 trees x 31 leaves, depth 6, 60 features\n"
        f"  ours         {r['ours_rows_per_s']:>12,.0f} rows/s  ({r['ours_seconds']:.2f} s; "
        f"precompute {r['precompute_seconds']:.2f} s, one-time JIT {r['jit_seconds']:.2f} s)\n"
        f"  pred_contrib {r['pred_contrib_rows_per_s']:>12,.0f} rows/s  "
        f"(on {r['baseline_rows']} rows)\n"
        f"  shap         {r['shap_rows_per_s']:>12,.0f} rows/s\n"
        f"  speedup vs pred_contrib {r['speedup']:.1f}x, max |diff| {r['max_abs_diff']:.2e}, "
        f"peak RSS {r['peak_rss_mb']:.0f} MB, load avg {r['load_avg_1m_before']:.1f}"
    )
    if "deep" in r:
        d = r["deep"]
        f = d["all_fallback"]
        print(
            f"  deep (no depth cap): speedup {d['speedup']:.1f}x, max |diff| "
            f"{d['max_abs_diff']:.2e}, fallback trees {d['n_fallback_trees']}/{d['n_trees']}, "
            f"leaves too deep for a table {d['n_direct_leaves']}; "
            f"all-fallback speedup {f['speedup']:.1f}x (max |diff| {f['max_abs_diff']:.2e})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--no-deep", action="store_true")
    a = ap.parse_args()
    run(rows=a.rows, json_path=a.json_path, deep=not a.no_deep)


if __name__ == "__main__":
    main()
