"""Adapter for the UCI "default of credit card clients" data (Taiwan, April-September 2005).

The source is one row per client (``ID``) with a credit limit, demographics, six monthly
bill amounts (``BILL_AMT6`` = April ... ``BILL_AMT1`` = September), six repayment
statuses (``PAY_6`` = April ... ``PAY_0`` = September; -2 no consumption, -1 paid in full,
0 revolving credit (minimum paid), k >= 1 payment delayed k months) and the target
``default payment next month`` (October 2005). Read with ``header=1`` (two header rows).

Mapping (approximate by nature: the source has statuses, not invoices and payments):

- each monthly statement with a positive bill becomes an invoice of that amount (NT$),
  ``invoice_id`` ``<ID>-2005-MM``, issued on the LAST DAY of its month and due 25 days
  later (``DUE_DAYS``): April's statement is due 25 May, September's 25 October.
  Statements with a bill <= 0 (no balance, or a credit balance) produce no invoice.
- the repayment status recorded in month m+1 describes the repayment of the statement of
  month m, which falls due in month m+1 (the usual reading of this data set, where
  ``PAY_AMTk`` pays ``BILL_AMT(k+1)``): ``PAY_5`` (May) -> April's statement, ...,
  ``PAY_0`` (September) -> August's statement. Status k >= 1 becomes one payment of the
  full amount ``k x 30`` days after the due date; -2, -1 and 0 become a payment on the due
  date. ``PAY_6`` (April's status) concerns March's bill, which is not in the data: unused.
- the cut-off is ``CUTOFF`` = 2005-10-01: the data describe the world up to September, so
  a payment that would fall on or after the cut-off is NOT emitted (the invoice is still
  open at the cut-off, with its days past due showing the delay), and September's
  statement (repaid in October, which is the target) has no payment at all.
- ``encode_target=True`` (for the quality benchmark) encodes each client's target as what
  happens after the cut-off to every invoice open at the cut-off, September's included:
  target 1 -> none of them is ever paid; target 0 -> September's statement is paid on its
  due date and older open invoices on the cut-off date. The generic ``build_labels`` as of
  ``CUTOFF`` then gives y = target for every client with an open invoice at the cut-off
  (checked on the real file: 27,956 clients, 23,662 early-warning and 4,294 persistence,
  all labels equal to the target; the 2,044 clients with nothing open at the cut-off are
  not in the scored population). Pass
  ``data_end=DATA_END`` to ``build_labels``: with no event after 25 October the label of
  a never-paying client would otherwise be censored. ``holdout_ids`` (client ids) keep
  their post-cut-off outcome unknown (no payment on or after the cut-off), so a model can
  be scored on them and compared with the ``targets`` side table.
- accounts: ``LIMIT_BAL`` -> credit_limit; ``segment`` = education as text
  (graduate_school, university, high_school, other, unknown for 0/5/6); no region (the
  data have none); sex, marriage and age are carried as extra columns.
- side table ``targets``: account_id, default_next_month (0/1), for benchmarks only.

Limits: months -> days is approximate (``k x 30`` days; real delays are months of a
billing cycle); status 0 means only the minimum was paid, yet it is mapped to a full
on-time payment (the unpaid rest reappears in the next bill, so amounts overlap between
months); ``PAY_AMT1..6`` are not used (they cannot be tied to one statement reliably); in
the older months a one-month delay seems to be coded as 2 (``PAY_2..PAY_6`` almost never
take the value 1), which makes April-July delays look a month longer than August's.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from features.adapters import iso_dates, money
from features.rules import DataContractError

CUTOFF: Final = date(2005, 10, 1)
DATA_END: Final = date(2005, 12, 31)
DUE_DAYS: Final = 25
DAYS_PER_MONTH_LATE: Final = 30
TARGET: Final = "default payment next month"

# (month, bill column, status column of the repayment of that month's statement or None)
STATEMENTS: Final = (
    (4, "BILL_AMT6", "PAY_5"),
    (5, "BILL_AMT5", "PAY_4"),
    (6, "BILL_AMT4", "PAY_3"),
    (7, "BILL_AMT3", "PAY_2"),
    (8, "BILL_AMT2", "PAY_0"),
    (9, "BILL_AMT1", None),
)
EDUCATION: Final = {1: "graduate_school", 2: "university", 3: "high_school", 4: "other"}
SEX: Final = {1: "male", 2: "female"}
MARRIAGE: Final = {1: "married", 2: "single", 3: "other"}


def read_source(src: Path) -> pd.DataFrame:
    """The UCI CSV (``src`` is the file or its folder), second header row as names."""
    src = Path(src)
    if src.is_dir():
        src = src / "default_of_credit_card_clients.csv"
    raw = pd.read_csv(src, header=1)
    needed = ["ID", "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE", TARGET]
    needed += [c for _, bill, pay in STATEMENTS for c in (bill, pay) if c]
    for col in needed:
        if col not in raw.columns:
            raise DataContractError(src.name, col, "missing_column", "is required but missing")
    return raw


def convert(
    src: Path, *, encode_target: bool = False, holdout_ids: Collection[int | str] | None = None
) -> dict[str, pd.DataFrame]:
    """Contract tables (+ ``targets`` side table) of the UCI Taiwan data at ``src``.

    See the module docstring for the mapping, ``encode_target`` and ``holdout_ids``.
    """
    raw = read_source(src)
    ids = raw["ID"].astype(np.int64).astype(str).to_numpy()
    holdout = {str(i) for i in holdout_ids} if holdout_ids else set()
    cutoff = np.datetime64(CUTOFF, "D")
    target = raw[TARGET].astype(np.int64).to_numpy()
    encoded = np.full(len(raw), encode_target) & ~np.isin(ids, list(holdout))

    invoices, payments = [], []
    for month, bill_col, pay_col in STATEMENTS:
        bill = raw[bill_col].astype(np.float64).to_numpy()
        has = bill > 0
        first_next = np.datetime64(f"2005-{month + 1:02d}-01", "D")
        issue = first_next - np.timedelta64(1, "D")  # last day of the month
        due = issue + np.timedelta64(DUE_DAYS, "D")
        inv_id = np.char.add(ids, f"-2005-{month:02d}")
        n = int(has.sum())
        invoices.append(pd.DataFrame({
            "invoice_id": inv_id[has], "account_id": ids[has],
            "issue_date": np.repeat(issue, n), "due_date": np.repeat(due, n),
            "amount": bill[has],
        }))
        if pay_col is not None:
            status = raw[pay_col].astype(np.int64).to_numpy()
            paid = due + (np.maximum(status, 0) * DAYS_PER_MONTH_LATE).astype("timedelta64[D]")
        else:
            paid = np.full(len(raw), np.datetime64("NaT", "D"))
        known = has & (paid < cutoff)  # NaT compares False: September is never "known"
        # Outcome after the cut-off, only for encoded clients with target 0.
        later = has & ~known & encoded & (target == 0)
        outcome = due if pay_col is None else np.full(len(raw), cutoff)
        when = np.where(known, paid, outcome)
        emit = known | later
        payments.append(pd.DataFrame({
            "invoice_id": inv_id[emit], "payment_date": when[emit], "amount": bill[emit],
            "payment_id": np.char.add(inv_id[emit], "-p"), "account_id": ids[emit],
        }))

    inv = pd.concat(invoices, ignore_index=True)
    pay = pd.concat(payments, ignore_index=True)
    tables = {
        "invoices": pd.DataFrame({
            "invoice_id": inv["invoice_id"], "account_id": inv["account_id"],
            "issue_date": iso_dates(inv["issue_date"].astype("datetime64[s]")),
            "due_date": iso_dates(inv["due_date"].astype("datetime64[s]")),
            "amount": money(inv["amount"]), "currency": "TWD",
            "terms_days": str(DUE_DAYS), "document_type": "statement",
        }).astype("str"),
        "payments": pd.DataFrame({
            "invoice_id": pay["invoice_id"],
            "payment_date": iso_dates(pay["payment_date"].astype("datetime64[s]")),
            "amount": money(pay["amount"]), "payment_id": pay["payment_id"],
            "account_id": pay["account_id"],
        }).astype("str"),
        "accounts": _accounts(raw, ids),
        "targets": pd.DataFrame({"account_id": pd.Series(ids, dtype="str"),
                                 "default_next_month": target}),
    }
    return tables


def _accounts(raw: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    def label(col: str, names: dict[int, str]) -> pd.Series:
        return raw[col].astype(np.int64).map(names).fillna("unknown").astype("str")

    return pd.DataFrame({
        "account_id": ids,
        "segment": label("EDUCATION", EDUCATION),
        "credit_limit": money(raw["LIMIT_BAL"]),
        "sex": label("SEX", SEX),
        "marriage": label("MARRIAGE", MARRIAGE),
        "age": raw["AGE"].astype(np.int64).astype(str),
    }).astype("str")
