"""Live vs offline in the product (issue 19, done-when): the verdict of
``models.live_agreement``'s evidence rule, in the words an analyst reads on the run page,
in ``delinq runs evaluate`` and in the nightly's summary.

What the check needs is fixed **when the version is trained**, never rebuilt at night:

- the version's **offline test rows** (:func:`offline_test_rows`: per test-period row of
  the model's population, ``account_id``, ``y``, the calibrated ``probability`` the
  training judged, ``weight``), stored on its MLflow run (``models.registry_offline``);
- its **period spread** (``models.live_period``, rule 4), stored beside it.

At evaluation (``pipelines.steps_live.evaluate_live``) a run's random holdout (its
resolved rows, ranked by the aging rule and scored by the champion beside the run) is
judged twice (:func:`judge_holdout`): **this run** alone, and **pooled** over the resolved
runs of the same champion version up to this one (``models.live_agreement.pool_runs``: the
holdout's accounts are the same every week, so the evidence is counted in distinct
accounts). The pooled verdict is the one that decides (a run's holdout is usually too few
on its own); both are stored in the run's ``meta["live"]["agreement"]`` (:func:`verdict_dict`).

The sentence (:func:`verdict_sentence`) reads in the direction of the comparison, live
first, then offline: ``live AUC 0.819 vs 0.841 offline on the test period: agrees
(difference -0.022, 95% interval -0.076 to +0.028, accounts and period; ...)``, or ``too
few accounts to judge live vs offline (12 positive / 40 negative; needs 30 each)``.

Pure functions; nothing here reads the clock or mutates its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from features.pit.sampling import row_weights
from models.live_agreement import (
    AgreementVerdict,
    PeriodSpread,
    judge_agreement,
    pool_runs,
)

if TYPE_CHECKING:
    from models.train import TrainingResult

#: The columns of a version's offline test rows (:func:`offline_test_rows`).
OFFLINE_COLUMNS: Final = ("account_id", "y", "probability", "weight")
#: What a population's verdict says when its champion's offline rows were not recorded.
NOT_RECORDED: Final = ("not judged live vs offline: no offline test rows recorded for "
                       "this champion version (trained before they were)")


def offline_test_rows(result: TrainingResult) -> pd.DataFrame:
    """The test period ``result`` was judged on, as the live check needs it: one row per
    resolved test-period row of its population (``result.test``), ``account_id`` (str),
    ``y`` (0/1), ``probability`` (0-1: the calibrated probability the training scored,
    ``result.test_scores.proba``) and ``weight`` (the row's sampling weight; 1 when the
    training set was not sampled)."""
    test = result.test
    w = row_weights(test)
    return pd.DataFrame({
        "account_id": test["account_id"].astype(str).to_numpy(),
        "y": test["y"].to_numpy(dtype=float).astype(np.int8),
        "probability": np.asarray(result.test_scores.proba, dtype=float),
        "weight": np.ones(len(test)) if w is None else np.asarray(w, dtype=float),
    })


def verdict_sentence(verdict: AgreementVerdict) -> str:
    """The verdict in words (module docstring), live first: ``live AUC L vs O offline on
    the test period: agrees (difference D, 95% interval A to B, ...; P positive / N
    negative accounts over R run(s))``; ``differs, live below`` (or ``above``) when the
    interval misses 0; ``too few accounts to judge live vs offline (P positive / N
    negative; needs 30 each)`` below the evidence rule's minimum (live or offline)."""
    live, off = verdict.live, verdict.offline
    runs = f"over {verdict.runs} run{'s' if verdict.runs != 1 else ''}"
    if not live.enough:
        return (f"too few accounts to judge live vs offline ({live.positive:,} positive / "
                f"{live.negative:,} negative {runs}; needs {live.minimum} each)")
    if not off.enough:
        return (f"too few accounts to judge live vs offline (the offline test period holds "
                f"{off.positive:,} positive / {off.negative:,} negative; needs {off.minimum} "
                "each)")
    a = verdict.agreement
    assert a is not None
    word = "agrees" if a.agrees else (
        "differs, live below" if a.high < 0 else "differs, live above")
    basis = ("accounts and period: period sd "
             f"{a.period_sd:.3f} at {verdict.lag:.1f} test periods"
             if verdict.lag is not None else
             "accounts only: no period spread recorded for this version")
    return (f"live AUC {a.live_auc:.3f} vs {a.offline_auc:.3f} offline on the test period: "
            f"{word} (difference {a.difference:+.3f}, {a.level:.0%} interval {a.low:+.3f} "
            f"to {a.high:+.3f}, {basis}; {live.positive:,} positive / {live.negative:,} "
            f"negative accounts {runs})")


def verdict_dict(verdict: AgreementVerdict, *, first: str, last: str) -> dict[str, Any]:
    """A verdict as stored in ``meta["live"]["agreement"]`` (JSON): ``verdict`` (one of
    ``models.live_agreement.VERDICTS``), ``line`` (:func:`verdict_sentence`), ``runs`` and
    the ``first`` / ``last`` run's ``as_of`` (ISO), the accounts per class
    (``positive`` / ``negative``), and when judged ``live_auc``, ``offline_auc``,
    ``difference``, ``low``, ``high`` (AUC units), ``level``, ``accounts_sd``,
    ``period_sd`` and ``lag`` (test periods; None: no period spread recorded)."""
    out: dict[str, Any] = {"verdict": verdict.verdict, "line": verdict_sentence(verdict),
                           "runs": verdict.runs, "first": first, "last": last,
                           "positive": verdict.live.positive,
                           "negative": verdict.live.negative, "lag": verdict.lag}
    a = verdict.agreement
    if a is not None:
        out.update(live_auc=a.live_auc, offline_auc=a.offline_auc, difference=a.difference,
                   low=a.low, high=a.high, level=a.level, accounts_sd=a.sd,
                   period_sd=a.period_sd)
    return out


def judge_holdout(runs: Mapping[str, pd.DataFrame], offline: pd.DataFrame, *,
                  period: PeriodSpread | None = None) -> dict[str, dict[str, Any]]:
    """One population's random holdout judged against its champion version's ``offline``
    test rows (:func:`offline_test_rows`) with its recorded ``period`` spread: ``runs``
    maps each resolved run's ``as_of`` (ISO date) to its resolved holdout rows
    (``account_id``, ``y``, ``probability``), every run of the same champion version up to
    the one judged (the latest ``as_of``). Returns ``{"run": ..., "pooled": ...}``
    (:func:`verdict_dict`): the latest run alone, and every run pooled."""
    if not runs:
        raise ValueError("no run to judge")
    dates = sorted(runs)
    last = dates[-1]
    alone = judge_agreement(runs[last], offline, runs=1, period=period,
                            live_dates=(last, last))
    pooled = judge_agreement(pool_runs({d: runs[d] for d in dates}), offline,
                             runs=len(dates), period=period, live_dates=(dates[0], last))
    return {"run": verdict_dict(alone, first=last, last=last),
            "pooled": verdict_dict(pooled, first=dates[0], last=last)}


def verdict_text(judged: Mapping[str, Any] | None) -> str | None:
    """What the run page says of one population's holdout (``meta["live"]["agreement"]
    [kind]``, :func:`judge_holdout` plus ``version``): the pooled verdict's sentence, which
    decides, with the runs it pools (``pooled over 9 runs 2024-09-02 .. 2024-10-28 of
    champion v3: live AUC ...``) and, when it pools more than this run, this run's own
    (``this run alone: ...``); :data:`NOT_RECORDED` when the champion's offline test rows
    were not recorded; None when nothing was judged (evaluated before the check existed)."""
    if not judged:
        return None
    who = f"champion v{judged['version']}" if judged.get("version") else "the champion"
    pooled = judged.get("pooled")
    if not pooled:
        return str(judged.get("line") or NOT_RECORDED)
    if pooled["runs"] == 1:
        return f"this run, {who}: {pooled['line']}"
    return (f"pooled over {pooled['runs']} runs {pooled['first']} .. {pooled['last']} of "
            f"{who}: {pooled['line']}; this run alone: {judged['run']['line']}")


def agreement_lines(live: Mapping[str, Any] | None) -> list[str]:
    """Per population judged in a run's ``live`` figures (``meta["live"]["agreement"]``),
    ``<kind> holdout: `` and its :func:`verdict_text`: the nightly summary's and
    ``delinq runs evaluate``'s line."""
    return [f"{kind} holdout: {verdict_text(judged)}"
            for kind, judged in sorted(((live or {}).get("agreement") or {}).items())
            if judged]
