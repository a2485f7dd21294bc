"""Straightforward pandas reference of the point-in-time features and labels (the oracle).

Written the way a competent pandas user would: vectorised merges and groupbys, no Python
loops over accounts, no cleverness. ``tests/`` compare the fast implementation in
``features.pit.features`` / ``features.pit.labels`` against it at 1e-9, and ``bench/features.py``
measures the speedup against it. Definitions are those of ``features.pit.FEATURE_SPEC``
(DESIGN sections 4-6); everything dated strictly before ``as_of`` is known.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.pit.credits import applied_payments, credit_changes
from features.spec import (
    BEHAVIOUR_WINDOWS,
    CLEAR_TOLERANCE_CENTS,
    DEFAULT_MATERIALITY,
    FACT_COLUMNS,
    FEATURE_COLUMNS,
    SEGMENT_AMOUNT_COLUMNS,
    SEGMENT_EDGES,
    Materiality,
    as_day,
    is_cleared,
    material_segment,
    ordered_categories,
)

DAY = pd.Timedelta(days=1)


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.days.astype("float64")


def _clear_dates(inv: pd.DataFrame, pay: pd.DataFrame) -> pd.DataFrame:
    """Per invoice: paid total, clear date (first day the cumulative payments, in whole
    cents, reach the amount's cents less the tolerance), first and last payment dates.
    ``pay`` is already cut to the known payments."""
    daily = pay.groupby(["invoice_id", "payment_date"], as_index=False)["amount"].sum()
    daily = daily.sort_values(["invoice_id", "payment_date"])
    daily["cum"] = daily.groupby("invoice_id")["amount"].cumsum()
    daily = daily.merge(inv[["invoice_id", "amount"]].rename(columns={"amount": "inv_amount"}),
                        on="invoice_id")
    reached = daily[is_cleared(daily["cum"].to_numpy(), daily["inv_amount"].to_numpy(),
                               CLEAR_TOLERANCE_CENTS)]
    clear = reached.groupby("invoice_id")["payment_date"].min().rename("clear_date")
    g = daily.groupby("invoice_id")
    paid = g["amount"].sum().rename("paid")
    first = g.first()
    out = pd.DataFrame({
        "paid": paid,
        "first_pay_date": first["payment_date"],
        "last_pay_date": daily.groupby("invoice_id")["payment_date"].max(),
    }).join(clear)
    res = inv[["invoice_id"]].merge(out, left_on="invoice_id", right_index=True, how="left")
    res["paid"] = res["paid"].fillna(0.0)
    return res.drop(columns="invoice_id").set_index(inv.index)


def known_invoices(book: Book, as_of: pd.Timestamp) -> pd.DataFrame:
    """Invoices issued before ``as_of`` with their payment state from payments before it.

    Payments are the applications of the one openness rule (``applied_payments``: credits,
    prepayments and overpayments applied); credit notes (negative amounts) are no invoices.
    """
    inv = book.invoices[(book.invoices["issue_date"] < as_of) & (book.invoices["amount"] > 0)]
    inv = inv[["invoice_id", "account_id", "issue_date", "due_date", "amount"]].copy()
    # the Book's account codes as text: the reference groups and joins its frames on the
    # plain ids (pandas cannot reindex between two category dtypes of different widths)
    inv["account_id"] = inv["account_id"].astype("str")
    applied = applied_payments(book)
    pay = applied[applied["payment_date"] < as_of]
    pay = pay.merge(inv[["invoice_id"]], on="invoice_id")  # semi-join (ids are unique)
    inv = inv.join(_clear_dates(inv, pay))
    inv["is_open"] = inv["clear_date"].isna()
    inv["outstanding"] = np.where(inv["is_open"], inv["amount"] - inv["paid"], 0.0)
    inv["dpd"] = _days(as_of - inv["due_date"])
    inv["days_late"] = _days(inv["clear_date"] - inv["due_date"])
    return inv


def _behaviour(cl: pd.DataFrame, suffix: str) -> pd.DataFrame:
    g = cl.groupby("account_id")
    cl = cl.assign(w=cl["amount"] * cl["days_late"], l1=cl["days_late"] >= 1,
                   l15=cl["days_late"] >= 15, l30=cl["days_late"] >= 30)
    g = cl.groupby("account_id")
    return pd.DataFrame({
        f"n_cleared_{suffix}": g.size().astype("float64"),
        f"days_late_mean_{suffix}": g["days_late"].mean(),
        f"days_late_max_{suffix}": g["days_late"].max(),
        f"days_late_wmean_{suffix}": g["w"].sum() / g["amount"].sum(),
        f"share_late_1d_{suffix}": g["l1"].mean(),
        f"share_late_15d_{suffix}": g["l15"].mean(),
        f"share_late_30d_{suffix}": g["l30"].mean(),
    })


def reference_features(book: Book, *, as_of: date | pd.Timestamp, facts: bool = False,
                       materiality: Materiality = DEFAULT_MATERIALITY) -> pd.DataFrame:
    """Features of every account with an open invoice at ``as_of`` (same frame as
    ``features.build_features``, facts included when ``facts``)."""
    as_of = pd.Timestamp(as_day(as_of))
    inv = known_invoices(book, as_of)
    op = inv[inv["is_open"]].copy()
    op["past_due"] = op["dpd"] >= 1
    pieces = []
    g = op.groupby("account_id")
    changes = credit_changes(book)
    coa = changes[changes["date"] < as_of].groupby("account_id")["amount"].sum()
    coa = coa.round(2).clip(lower=0.0).reindex(g.size().index, fill_value=0.0)
    ex = pd.DataFrame({
        "open_balance": (g["outstanding"].sum() - coa).clip(lower=0.0),
        "oldest_dpd": g["dpd"].max(),
        "n_open_invoices": g.size().astype("float64"),
        "largest_open_amount": g["outstanding"].max(),
    })
    buckets = {
        "past_due_amount": op["dpd"] >= 1,
        "n_past_due_invoices": op["dpd"] >= 1,
        "amt_not_due": op["dpd"] <= 0,
        "amt_dpd_1_30": op["dpd"].between(1, 30),
        "amt_dpd_31_60": op["dpd"].between(31, 60),
        "amt_dpd_61_90": op["dpd"].between(61, 90),
        "amt_dpd_91_plus": op["dpd"] >= 91,
        "amt_due_next_7d": op["dpd"].between(-6, 0),
        "amt_due_next_14d": op["dpd"].between(-13, 0),
        "amt_due_next_30d": op["dpd"].between(-29, 0),
        **{c: op["dpd"] >= e for c, e in zip(SEGMENT_AMOUNT_COLUMNS[1:], SEGMENT_EDGES[1:],
                                             strict=True)},
    }
    for name, mask in buckets.items():
        col = "one" if name.startswith("n_") else "outstanding"
        vals = op.assign(one=1.0)[col].where(mask, 0.0)
        ex[name] = vals.groupby(op["account_id"]).sum()
    ex["past_due_share"] = ex["past_due_amount"] / g["outstanding"].sum()
    pieces.append(ex)

    cl = inv[~inv["is_open"]]
    for days in BEHAVIOUR_WINDOWS:
        win = cl if days is None else cl[cl["clear_date"] >= as_of - days * DAY]
        pieces.append(_behaviour(win, "all" if days is None else f"{days}d"))
    last = cl[cl["clear_date"] == cl.groupby("account_id")["clear_date"].transform("max")]
    recent = cl[cl["clear_date"] >= as_of - 90 * DAY].groupby("account_id")["days_late"].mean()
    older = cl[(cl["clear_date"] >= as_of - 365 * DAY) & (cl["clear_date"] < as_of - 90 * DAY)]
    first_in = inv[inv["first_pay_date"] >= as_of - 365 * DAY]
    # partial: the first payment day did not clear the invoice
    partial = ~(first_in["clear_date"] == first_in["first_pay_date"])
    pieces.append(pd.DataFrame({
        "days_late_last": last.groupby("account_id")["days_late"].max(),
        "days_late_trend_90d_vs_365d":
            recent - older.groupby("account_id")["days_late"].mean(),
        "days_since_last_payment":
            _days(as_of - inv.groupby("account_id")["last_pay_date"].max()),
        "partial_payment_share_365d": partial.groupby(first_in["account_id"]).mean(),
    }))

    ga = inv.groupby("account_id")
    i90 = inv[inv["issue_date"] >= as_of - 90 * DAY].groupby("account_id")["amount"]
    i365 = inv[inv["issue_date"] >= as_of - 365 * DAY]
    g365 = i365.groupby("account_id")["amount"]
    act = pd.DataFrame({
        "n_invoices_90d": i90.size().astype("float64"),
        "n_invoices_365d": g365.size().astype("float64"),
        "amt_billed_90d": i90.sum(),
        "amt_billed_365d": g365.sum(),
        "avg_invoice_amount_365d": g365.mean(),
        "tenure_days": _days(as_of - ga["issue_date"].min()),
        "terms_days_median": _days(inv["due_date"] - inv["issue_date"])
        .groupby(inv["account_id"]).median(),
    })
    pieces.append(act)

    dis = book.disputes[book.disputes["opened_date"] < as_of]
    dis = dis.merge(inv[["invoice_id", "account_id", "issue_date", "is_open", "outstanding"]],
                    on="invoice_id")
    dis_open = dis[dis["is_open"] & ~(dis["resolved_date"] < as_of)]
    open_inv = dis_open.drop_duplicates("invoice_id")
    disputed_365 = i365.merge(dis[["invoice_id"]].drop_duplicates(), on="invoice_id")
    pieces.append(pd.DataFrame({
        "n_open_disputes": dis_open.groupby("account_id").size().astype("float64"),
        "amt_open_disputes": open_inv.groupby("account_id")["outstanding"].sum(),
        "n_disputes_365d": dis[dis["opened_date"] >= as_of - 365 * DAY]
        .groupby("account_id").size().astype("float64"),
        "disputed_365": disputed_365.groupby("account_id").size().astype("float64"),
    }))

    out = ex[[]].join(pieces, how="left")
    zero_if_missing = [c for c in out.columns if c.startswith("n_")] + [
        "amt_billed_90d", "amt_billed_365d", "amt_open_disputes", "disputed_365"]
    out[zero_if_missing] = out[zero_if_missing].fillna(0.0)
    out["dispute_rate_365d"] = out["disputed_365"] / out["n_invoices_365d"].replace(0, np.nan)

    acc = book.accounts.drop_duplicates("account_id").set_index("account_id")
    acc = acc.reindex(out.index)
    limit = acc["credit_limit"].where(acc["credit_limit"] > 0)
    gross = op.groupby("account_id")["outstanding"].sum().reindex(out.index)
    out["credit_utilisation"] = gross / limit
    out["account_age_days"] = _days(as_of - acc["created_date"])
    for col, src in (("account_segment", "segment"), ("account_region", "region")):
        cats = ordered_categories(book.accounts[src])
        out[col] = pd.Categorical(acc[src].astype(object).where(acc[src].notna(), None),
                                  categories=cats)

    out = out.sort_index()
    out.index.name = "account_id"
    out = out.reset_index()
    out["account_id"] = out["account_id"].astype("str")
    out.insert(1, "as_of", pd.Series(as_of, index=out.index).astype("datetime64[s]"))
    bands = [ex[c].reindex(out["account_id"]).to_numpy() for c in SEGMENT_AMOUNT_COLUMNS]
    out.insert(2, "segment", material_segment(bands, out["open_balance"].to_numpy(),
                                              materiality=materiality))
    if not facts:
        return out[["account_id", "as_of", "segment", *FEATURE_COLUMNS]]
    # the oldest open invoice: earliest due date, ties to the one listed first in the book
    oldest = op.sort_values("due_date", kind="stable").drop_duplicates("account_id")
    oldest = oldest.set_index("account_id").reindex(out["account_id"])
    out["oldest_invoice_id"] = pd.Series(oldest["invoice_id"].array, index=out.index,
                                         dtype="str")
    out["oldest_invoice_open"] = oldest["outstanding"].to_numpy()
    partial = (op["paid"] > 0).groupby(op["account_id"]).any()
    out["partial_payer"] = partial.reindex(out["account_id"]).to_numpy(dtype=bool)
    out["credit_on_account"] = coa.reindex(out["account_id"]).to_numpy()
    for c in SEGMENT_AMOUNT_COLUMNS[1:]:
        out[c] = ex[c].reindex(out["account_id"]).to_numpy()
    return out[["account_id", "as_of", "segment", *FEATURE_COLUMNS, *FACT_COLUMNS]]


def reference_labels(book: Book, *, as_of: date | pd.Timestamp, delinquency_dpd: int = 30,
                     persistence_days: int = 30,
                     data_end: date | pd.Timestamp | None = None,
                     materiality: Materiality = DEFAULT_MATERIALITY) -> pd.DataFrame:
    """Labels of every account with an open invoice at ``as_of`` (same frame as
    ``features.build_labels``)."""
    as_of = pd.Timestamp(as_day(as_of))
    end = (book.last_date + DAY) if data_end is None else pd.Timestamp(as_day(data_end))
    inv = known_invoices(book, as_of)
    op = inv[inv["is_open"]][["invoice_id", "account_id", "due_date", "amount", "outstanding",
                              "dpd"]].copy()
    applied = applied_payments(book)
    pay = applied[applied["payment_date"] < end]
    pay = pay.merge(op[["invoice_id"]], on="invoice_id")
    op["f"] = _clear_dates(op, pay)["clear_date"]
    exposure = op.groupby("account_id")["outstanding"].transform("sum")
    over = op["outstanding"].where(op["dpd"] >= delinquency_dpd, 0.0)
    op["exposure"] = exposure
    op["early"] = ~materiality.material(over.groupby(op["account_id"]).transform("sum"),
                                        exposure)

    # early warning: bad if not cleared before due + D (known once due + D <= data_end)
    ew = op[op["early"]].copy()
    ew["c"] = ew["due_date"] + delinquency_dpd * DAY
    ew["good"] = ew["f"].notna() & (ew["f"] < ew["c"])
    ew["bad"] = (ew["f"].notna() & (ew["f"] >= ew["c"])) | (ew["f"].isna() & (ew["c"] <= end))
    ew["unknown"] = ~ew["good"] & ~ew["bad"]
    # the crossed amount per crossing day, cumulated: material from the first such day
    crossed = (ew[ew["bad"]].groupby(["account_id", "c"])["outstanding"].sum()
               .groupby(level="account_id").cumsum().rename("crossed").reset_index())
    crossed = crossed.merge(ew.groupby("account_id")["exposure"].first().reset_index())
    material = crossed[materiality.material(crossed["crossed"], crossed["exposure"])]
    g = ew.groupby("account_id")
    r_ew = pd.DataFrame({
        "all_good": g["good"].all(), "any_unknown": g["unknown"].any(),
        "first_material": material.groupby("account_id")["c"].min(),
        "last_clear": g["f"].max(),
        "last_resolved": ew["f"].where(ew["good"], ew["c"]).where(~ew["unknown"])
        .groupby(ew["account_id"]).max(),
        "bad_amount": ew["outstanding"].where(ew["bad"], 0.0).groupby(ew["account_id"]).sum(),
    })
    hit = r_ew["first_material"].notna()
    r_ew["y"] = np.where(hit, 1.0, np.where(r_ew["all_good"] | ~r_ew["any_unknown"], 0.0,
                                            np.nan))
    r_ew["label_resolved_date"] = r_ew["first_material"].clip(lower=as_of).where(
        hit, r_ew["last_clear"].where(
            r_ew["all_good"], r_ew["last_resolved"].clip(lower=as_of).where(
                ~r_ew["any_unknown"])))
    r_ew["model"] = "early_warning"

    # persistence: at as_of + P, still uncleared and >= D DPD; earlier if all clear
    ps = op[~op["early"]].copy()
    check = as_of + persistence_days * DAY
    ps["cleared_before_check"] = ps["f"].notna() & (ps["f"] < check)
    ps["bad"] = ~ps["cleared_before_check"] & (_days(check - ps["due_date"]) >= delinquency_dpd)
    g = ps.groupby("account_id")
    left = ps["outstanding"].where(ps["bad"], 0.0).groupby(ps["account_id"]).sum()
    r_ps = pd.DataFrame({
        "all_clear": g["cleared_before_check"].all(),
        "any_bad": materiality.material(left, g["exposure"].first()),
        "last_clear": g["f"].max(),
        "bad_amount": ps["outstanding"].where(ps["bad"], 0.0).groupby(ps["account_id"]).sum(),
    })
    known = check <= end
    r_ps["y"] = np.where(r_ps["all_clear"], 0.0,
                         np.where(known, r_ps["any_bad"].astype("float64"), np.nan))
    r_ps["label_resolved_date"] = r_ps["last_clear"].where(
        r_ps["all_clear"], check if known else pd.NaT)
    r_ps["model"] = "persistence"

    out = pd.concat([r_ew, r_ps]).sort_index()
    out["censored"] = out["y"].isna()
    out["delinquent_amount"] = out["bad_amount"].where(out["y"] == 1, 0.0).where(~out["censored"])
    out.index.name = "account_id"
    out = out.reset_index()
    out["account_id"] = out["account_id"].astype("str")
    out["as_of"] = pd.Series(as_of, index=out.index).astype("datetime64[s]")
    out["label_resolved_date"] = out["label_resolved_date"].astype("datetime64[s]")
    out["y"] = out["y"].astype("float64")
    return out[["account_id", "as_of", "model", "y", "label_resolved_date", "censored",
                "delinquent_amount"]].reset_index(drop=True)
