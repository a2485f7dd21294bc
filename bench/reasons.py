"""Share of reasons that read backwards, before and after issue 14, and the cost of the
monotone constraints on the synthetic book (``python -m bench.reasons``).

A cited reason reads *backwards* when the feature has a known risk direction
(``features.spec.FEATURE_DIRECTION``) and the account's value sits on the other side of
typical (the median of the model's training population) than the reason claims: a risk
reason on the safe side, a mitigating one on the risky side. "before" scores with
unconstrained models and reasons chosen by the SHAP sign alone (the earlier behaviour);
"after" with the monotone models and the side rule. Capture@10 vs the aging rule comes from
``bench.quality.synthetic_quality`` with ``monotone`` off and on.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pandas as pd

from features.spec import FEATURE_DIRECTION, as_day
from models.train import TrainConfig, TrainingResult, train_models
from serving.reasons import reason_codes, typical_values


def backwards_share(worklist_parts: list[tuple[str, pd.DataFrame]],
                    typical: dict[str, dict[str, float]]) -> dict[str, float]:
    """Share of cited directed reasons on the wrong side of typical (and counts)."""
    wrong = cited = 0
    for model, frame in worklist_parts:
        for text in frame["reasons_json"]:
            for it in json.loads(text):
                d = FEATURE_DIRECTION.get(it["feature"], 0)
                t = typical[model].get(it["feature"])
                if it["direction"] == "fact" or d == 0 or t is None or it["value"] is None:
                    continue
                cited += 1
                sign = 1 if it["direction"] == "raises" else -1
                wrong += not sign * d * (it["value"] - t) > 0
    return {"cited": cited, "backwards": wrong, "share": wrong / cited if cited else 0.0}


def run(n_accounts: int = 2000, seed: int = 0) -> dict[str, Any]:
    from bench.quality import synthetic_quality
    from features import build_features, build_training_set
    from features.pit.training_set import as_of_grid
    from features.spec import MODEL_OF_SEGMENT
    from features.synthetic import generate_book

    out: dict[str, Any] = {"accounts": n_accounts}
    for monotone in (False, True):
        q = synthetic_quality(n_accounts=n_accounts, seed=seed,
                              config=TrainConfig(monotone=monotone))
        out[f"monotone_{monotone}"] = {k: q[k] for k in (
            "synthetic_auc", "synthetic_capture10", "aging_rule_capture10",
            "capture10_ratio_vs_aging")}

    book = generate_book(n_accounts, seed=seed)
    ts = build_training_set(book, as_of_dates=as_of_grid(book, freq="weekly"))
    as_of = as_day(book.last_date) + timedelta(days=1)
    feats = build_features(book, as_of=as_of, facts=True).reset_index(drop=True)
    history = (pd.Timestamp(as_of) - pd.Timestamp(book.first_date)).days
    for label, monotone, sided in (("before", False, False), ("after", True, True)):
        trained = train_models(ts, config=TrainConfig(monotone=monotone))
        models = {k: r.model for k, r in trained.items() if isinstance(r, TrainingResult)}
        typical = {k: typical_values(m) or {} for k, m in models.items()}
        parts = []
        for name, model in models.items():
            part = feats[feats["segment"].map(MODEL_OF_SEGMENT) == name]
            phi = model.explain(part).values
            kw = dict(typical=typical[name], population=name, history_days=history) if (
                sided) else {}
            parts.append((name, reason_codes(part, phi, model.feature_names,
                                             segment=part["segment"], **kw)))
        out[f"reasons_{label}"] = backwards_share(parts, typical)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    result = run(args.accounts, args.seed)
    print(json.dumps(result, indent=2))
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
