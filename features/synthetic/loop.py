"""Synthetic collections loop (issue 17): collector contacts and promises to pay for a book.

Derived from a generated book's own payment story, deterministically per ``seed``:

- an invoice still unpaid 10 days after its due date (payments other than write-offs) is
  *chased* with probability 60%: one contact 7-14 days after its due date, while it is
  still unpaid and before the book's end (channel: phone 60%, email 30%, letter 10%);
- a customer who will pay within 30 days of the contact promises (70%: outcome
  ``promised``, else ``reached``) a date at most 3 days before the payment arrives: the
  promise is **kept**;
- a customer who will not (paid 30+ days after the contact, written off or never) promises
  less often (40%; else ``no_answer`` 40%, ``refused`` 20%) and a date 5-14 days after the
  contact: the promise is **broken** (the payment comes after the date plus grace).

The documented effect: promise breakers are riskier (a broken promise marks an invoice that
stays unpaid for a month or more, the same fragility that makes the next ones late), and a
kept promise lowers risk for a while (the customer paid what it owed). Promises are for
the invoice's amount and name it. Everything is dated within the book (before its last
day); the promised date may fall after it (the promise is then open at the end).

Measured (250 accounts, seed 4, monthly ``as_of`` July-December 2023, resolved labels):
accounts with a promise broken in the last 180 days went delinquent at 40% (154 rows),
those that kept every promise of the last year at 27% (349), the others at 18% (638)
(``tests/features/test_synthetic_loop.py`` holds broken > kept + 10 points). Keepers are
riskier than the unchased because being chased at all means an invoice went 10+ days late.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from features.contract.book import Book, conform

#: Share of invoices 10+ days late that a collector chases with a contact.
CHASE_SHARE: Final = 0.6
#: Days after the due date from which an unpaid invoice is chased, and the contact window.
CHASE_AFTER_DAYS: Final = 10
CONTACT_DAYS: Final = (7, 14)
#: A payment within this many days of the contact is one the customer could promise.
PAYS_WITHIN_DAYS: Final = 30


def _clear_days(book: Book) -> pd.Series:
    """Per invoice id: the day real payments (not write-offs) reach its amount (NaT: never)."""
    pay = book.payments
    if "method" in pay.columns:
        pay = pay[pay["method"].fillna("") != "write_off"]
    pay = pay.sort_values(["invoice_id", "payment_date"], kind="stable")
    cum = pay.groupby("invoice_id")["amount"].cumsum()
    amount = pay["invoice_id"].map(book.invoices.set_index("invoice_id")["amount"])
    reached = pay[cum.to_numpy() >= amount.to_numpy() - 0.01]
    return reached.groupby("invoice_id")["payment_date"].min()


def loop_events(book: Book, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(promises, contacts) for ``book`` as contract tables (see the module docstring)."""
    rng = np.random.default_rng([seed, 17])
    inv = book.invoices[book.invoices["amount"] > 0].reset_index(drop=True)
    end = pd.Timestamp(book.last_date)
    clear = inv["invoice_id"].map(_clear_days(book)).astype("datetime64[s]")
    chase_from = inv["due_date"] + pd.Timedelta(days=CHASE_AFTER_DAYS)
    n = len(inv)
    contact = inv["due_date"] + pd.to_timedelta(
        rng.integers(CONTACT_DAYS[0], CONTACT_DAYS[1] + 1, n), unit="D")
    unpaid = clear.isna() | (clear > chase_from)
    chased = (unpaid & (contact < end) & (clear.isna() | (contact < clear))
              & (rng.random(n) < CHASE_SHARE)).to_numpy()
    pays_soon = (clear.notna() & (clear <= contact + pd.Timedelta(days=PAYS_WITHIN_DAYS))
                 ).to_numpy()
    u = rng.random(n)
    outcome = np.where(pays_soon, np.where(u < 0.7, "promised", "reached"),
                       np.select([u < 0.4, u < 0.8], ["promised", "no_answer"], "refused"))
    channel = rng.choice(["phone", "email", "letter"], n, p=[0.6, 0.3, 0.1])
    rows = np.flatnonzero(chased)
    contacts = pd.DataFrame({
        "contact_id": [f"CT{k:08d}" for k in range(len(rows))],
        "account_id": inv["account_id"].to_numpy()[rows],
        "contact_date": contact.to_numpy()[rows], "channel": channel[rows],
        "outcome": outcome[rows]})
    promised = rows[outcome[rows] == "promised"]
    early = pd.to_timedelta(rng.integers(0, 4, n), unit="D")
    late = pd.to_timedelta(rng.integers(5, 15, n), unit="D")
    kept_date = np.maximum((clear - early).to_numpy(), contact.to_numpy())
    date = np.where(pays_soon, kept_date, (contact + late).to_numpy())
    promises = pd.DataFrame({
        "promise_id": [f"PR{k:08d}" for k in range(len(promised))],
        "account_id": inv["account_id"].to_numpy()[promised],
        "created_date": contact.to_numpy()[promised],
        "promised_date": date[promised],
        "amount": inv["amount"].to_numpy()[promised],
        "invoice_id": inv["invoice_id"].to_numpy()[promised]})
    return conform("promises", promises), conform("contacts", contacts)


def with_loop_events(book: Book, *, seed: int = 0) -> Book:
    """``book`` with :func:`loop_events` as its promises and contacts."""
    promises, contacts = loop_events(book, seed=seed)
    return Book(invoices=book.invoices, payments=book.payments, accounts=book.accounts,
                disputes=book.disputes, promises=promises, contacts=contacts)
