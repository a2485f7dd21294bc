"""Bench: a synthetic book scored weekly over 12 simulated weeks, then judged live (issue 19).

    python -m bench.live [--accounts 2000] [--behaviour-change 2024-08-05] [--json PATH]

Steps, all through the product's steps layer (``pipelines.steps``, ``pipelines.steps_live``)
in a throw-away data folder:

1. generate a book (2023-01-01 .. 2024-12-31; ``--behaviour-change``: from that day on
   accounts pay like their mirror account, ``features.synthetic``), ingest it;
2. train and register both models on what was known before the first run (``data_end``);
3. score the book as of 12 weekly dates (as of the first run, each Monday); after each
   run, collectors "work" the top 10% of the list: a contact recorded through the
   workbench's event API three days after the run (so those accounts leave the
   ``untouched`` slice);
4. evaluate live performance against the whole book (labels resolve 60 days after a run:
   the early runs resolve, the last ones wait), demote by ``live_fallback_runs``.

The table printed compares, per resolved run and population, the live AUC of the
published ranking on untouched accounts (with an account-level bootstrap 95% interval, 200
draws) with the offline test-period AUC the training reported, and the aging rule's live
AUC on the same accounts. ``agrees``: the offline AUC lies inside the live interval.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

WEEKS = 12
FIRST_RUN = date(2024, 9, 2)
TOP_SHARE = 0.10
DRAWS = 200


def bootstrap_auc(y: np.ndarray, p: np.ndarray, *, draws: int = DRAWS,
                  seed: int = 0) -> tuple[float, float]:
    """Percentile 95% interval of the ROC-AUC over ``draws`` resamples of the rows."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        i = rng.integers(0, len(y), len(y))
        if len(np.unique(y[i])) == 2:
            out.append(roc_auc_score(y[i], p[i]))
    if not out:
        return float("nan"), float("nan")
    return float(np.quantile(out, 0.025)), float(np.quantile(out, 0.975))


def _record_contacts(settings: Any, account_ids: list[str], day: date) -> None:
    from serving import store_io
    from workbench.events import AccountFacts, ContactIn, record_event
    from workbench.users import add_user, get_user

    engine = store_io.make_engine(store_io.normalise_url(settings.resolved_store_url))
    now = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    try:
        with engine.connect() as conn:
            user = get_user(conn, "bench")
        if user is None:
            user = add_user(engine, username="bench", role="analyst",
                            password="a-long-bench-password", actor="bench", now=now)
        body = ContactIn(kind="contact", channel="phone", outcome="reached", contact_date=day)
        for account in account_ids:
            record_event(engine, body, facts=AccountFacts(account_id=account, open_balance=None,
                                                          invoice_ids=None),
                         user=user, now=now)
    finally:
        engine.dispose()


def simulate(folder: Path, *, accounts: int, seed: int = 0,
             behaviour_change: str | None = None, first_run: date = FIRST_RUN,
             weeks: int = WEEKS) -> dict[str, Any]:
    """Run the simulation in ``folder`` (module docstring); returns the rows of the table,
    the demotions, the offline metrics and timings."""
    from features.contract.io import write_book
    from features.pit.labels import build_labels
    from features.synthetic import generate_book
    from pipelines import steps
    from pipelines.settings import load_settings
    from pipelines.steps_live import evaluate_live
    from serving.store import WorklistStore

    t0 = time.perf_counter()
    book = generate_book(accounts, seed=seed, start="2023-01-01", end="2024-12-31",
                         behaviour_change=behaviour_change)
    write_book(book, folder / "source")
    settings = load_settings(data_dir=folder / "state", seed=seed)
    staged = steps.ingest(settings=settings, source=folder / "source").staged
    trained = steps.train(settings=settings, book=staged, data_end=first_run)
    offline = {m.model: m.metrics_table.get("lightgbm", {}) for m in trained.models}
    timings = {"train": time.perf_counter() - t0}
    t1 = time.perf_counter()
    dates = [first_run + timedelta(days=7 * k) for k in range(weeks)]
    for as_of in dates:
        steps.score(settings=settings, book=staged, as_of=as_of, accept_anomalies=True)
        with WorklistStore(settings.resolved_store_url) as store:
            wl = store.read_worklist(as_of=as_of)
        top = wl.nsmallest(int(np.ceil(TOP_SHARE * len(wl))), "rank")
        _record_contacts(settings, top["account_id"].astype(str).tolist(),
                         as_of + timedelta(days=3))
    timings["score"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    live = evaluate_live(settings=settings, book=staged)
    timings["evaluate"] = time.perf_counter() - t2
    rows = []
    with WorklistStore(settings.resolved_store_url) as store:
        for as_of in dates:
            run = store.current_run(as_of=as_of)
            payload = (run.meta or {}).get("live")
            if not payload:
                rows.append({"as_of": as_of.isoformat(), "population": "all",
                             "status": "pending"})
                continue
            wl = store.read_worklist(as_of=as_of)
            labels = build_labels(steps.read_book(staged), as_of=as_of,
                                  data_end=live.data_end)
            rows += _run_rows(as_of, payload, wl, labels, contacted=_top_ids(wl),
                              offline=offline)
    return {"rows": rows, "demotions": [dict(d) for d in live.demotions],
            "offline": offline, "timings": timings, "accounts": accounts,
            "behaviour_change": behaviour_change, "data_end": live.data_end.isoformat()}


def _top_ids(wl: pd.DataFrame) -> set[str]:
    return set(wl.nsmallest(int(np.ceil(TOP_SHARE * len(wl))), "rank")["account_id"].astype(str))


def _run_rows(as_of: date, payload: dict, wl: pd.DataFrame, labels: pd.DataFrame, *,
              contacted: set[str], offline: dict[str, dict]) -> list[dict[str, Any]]:
    lab = labels[["account_id", "model", "y"]].rename(columns={"model": "label_model"})
    joined = wl.assign(account_id=wl["account_id"].astype(str)).merge(
        lab.assign(account_id=lab["account_id"].astype(str)), on="account_id")
    joined = joined[(joined["label_model"] == joined["model"]) & joined["y"].notna()
                    & (joined["scorer"] == "model") & ~joined["account_id"].isin(contacted)]
    out = []
    for pop in ("early_warning", "persistence"):
        row = next((r for r in payload["table"] if (r["slice"], r["population"], r["ranked_by"])
                    == ("untouched", pop, "model")), None)
        every = next((r for r in payload["table"] if (r["slice"], r["population"], r["ranked_by"])
                      == ("all", pop, "model")), None)
        if row is None:
            continue
        sub = joined[joined["model"] == pop]
        lo, hi = bootstrap_auc(sub["y"].to_numpy(float), sub["probability"].to_numpy(float))
        test_auc = offline.get(pop, {}).get("roc_auc")
        out.append({
            "as_of": as_of.isoformat(), "population": pop, "status": "resolved",
            "n_untouched": row["n_rows"], "n_contacted": (every or row)["n_rows"] - row["n_rows"],
            "live_auc_all": (every or {}).get("auc"), "live_auc": row["auc"],
            "live_auc_lo": lo, "live_auc_hi": hi, "rule_auc": row["rule_auc"],
            "capture@10": row["capture@10"], "rule_capture@10": row["rule_capture@10"],
            "ece": row["ece"], "offline_auc": test_auc,
            "agrees": bool(test_auc is not None and lo <= test_auc <= hi),
        })
    return out


def markdown(result: dict[str, Any]) -> str:
    """The live-vs-offline table as Markdown."""
    head = ["as_of", "population", "untouched rows", "contacted", "live AUC (all)",
            "live AUC untouched [95% CI]", "rule AUC untouched", "capture@10 vs rule", "ECE",
            "offline test AUC", "agrees"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(x: Any) -> str:
        return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"

    for r in result["rows"]:
        if r["status"] != "resolved":
            lines.append(f"| {r['as_of']} | all | pending (labels resolve after the book's "
                         "end) |" + " |" * (len(head) - 3))
            continue
        lines.append(
            f"| {r['as_of']} | {r['population']} | {r['n_untouched']} | {r['n_contacted']} | "
            f"{f(r['live_auc_all'])} | {f(r['live_auc'])} [{f(r['live_auc_lo'])}, "
            f"{f(r['live_auc_hi'])}] | {f(r['rule_auc'])} | {f(r['capture@10'])} vs "
            f"{f(r['rule_capture@10'])} | {f(r['ece'])} | {f(r['offline_auc'])} | "
            f"{'yes' if r['agrees'] else 'no'} |")
    for d in result["demotions"]:
        lines.append(f"\ndemoted: {d['reason']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--behaviour-change", default=None,
                        help="day from which accounts pay like their mirror (YYYY-MM-DD)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.accounts > 100_000:
        parser.error("keep it at most 100,000 accounts on a shared machine")
    with tempfile.TemporaryDirectory() as tmp:
        result = simulate(Path(tmp), accounts=args.accounts, seed=args.seed,
                          behaviour_change=args.behaviour_change)
    print(markdown(result))
    print(f"\ntimings (s): {json.dumps({k: round(v, 1) for k, v in result['timings'].items()})}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
