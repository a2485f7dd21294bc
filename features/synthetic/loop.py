"""Synthetic collections loop (issue 17): collector contacts and promises to pay for a book.

Derived from a generated book's own payment story, deterministically per ``seed``:

- an invoice still unpaid 10 days after its due date (payments other than write-offs) is
  *chased* with probability 60%: one contact 7-14 days after its due date, while it is
  still unpaid and before the book's last day (channel: phone 60%, email 30%, letter 10%);
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

Streaming: the rule (:func:`draw`) works on one block of accounts at a time (the
generator's random block, ``features.synthetic._core.CHUNK_ACCOUNTS``) with that block's
own random stream (:func:`block_rng`), so the generator writes the loop chunk by chunk
beside the invoices and no book is ever held whole. Contact and promise ids are numbered
in book order afterwards (``features.synthetic._arrow.number_loop``).

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
from features.spec import CLEAR_TOLERANCE_CENTS, to_cents
from features.synthetic._core import NEVER

#: Share of invoices 10+ days late that a collector chases with a contact.
CHASE_SHARE: Final = 0.6
#: Days after the due date from which an unpaid invoice is chased, and the contact window.
CHASE_AFTER_DAYS: Final = 10
CONTACT_DAYS: Final = (7, 14)
#: A payment within this many days of the contact is one the customer could promise.
PAYS_WITHIN_DAYS: Final = 30
CHANNELS: Final = ("phone", "email", "letter")
CHANNEL_P: Final = (0.6, 0.3, 0.1)
OUTCOMES: Final = ("promised", "reached", "no_answer", "refused")
PROMISED, REACHED, NO_ANSWER, REFUSED = range(4)


def block_rng(seed: int, block: int) -> np.random.Generator:
    """The loop's random stream for account block ``block`` (the first block keeps the
    stream the whole-book loop always used, so books of one block are unchanged)."""
    return np.random.default_rng([seed, 17] if block == 0 else [seed, 17, block])


def clear_days(n_invoices: int, inv: np.ndarray, day: np.ndarray, cents: np.ndarray,
               amount_cents: np.ndarray) -> np.ndarray:
    """Per invoice row ``0..n_invoices-1``: the epoch day its payments (rows ``inv``, dated
    ``day``, ``cents`` each; write-offs already left out) reach its ``amount_cents`` by the
    clearing rule (``features.spec.is_cleared``); :data:`NEVER` if they never do."""
    order = np.lexsort((day, inv))  # by invoice, then date (stable for same-day rows)
    inv, day, cents = inv[order], day[order], cents[order]
    cum = np.cumsum(cents)
    first = np.r_[True, inv[1:] != inv[:-1]] if len(inv) else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    before = np.repeat((cum - cents)[starts], np.diff(np.r_[starts, len(inv)]))
    reached = (cum - before) >= amount_cents[inv] - CLEAR_TOLERANCE_CENTS
    r_inv, r_day = inv[reached], day[reached]
    head = np.r_[True, r_inv[1:] != r_inv[:-1]] if len(r_inv) else np.zeros(0, bool)
    out = np.full(n_invoices, NEVER, dtype=np.int64)
    out[r_inv[head]] = r_day[head]  # the earliest date, as rows are sorted by date
    return out


def draw(due: np.ndarray, clear: np.ndarray, *, cutoff: int,
         rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The loop's rule (module docstring) for one block's invoices (epoch days).

    ``due``, ``clear`` (:func:`clear_days`) per invoice row; contacts only before
    ``cutoff`` (the book's last day). Returns ``row`` (invoice row of each contact, in row
    order), ``contact``, ``channel`` and ``outcome`` (codes into :data:`CHANNELS`,
    :data:`OUTCOMES`), ``promised`` (whether the contact made a promise) and ``date`` (the
    promised day, meaningful where ``promised``).
    """
    n = len(due)
    contact = due + rng.integers(CONTACT_DAYS[0], CONTACT_DAYS[1] + 1, n)
    # NEVER is after any day, so "never cleared" needs no case of its own below.
    unpaid = clear > due + CHASE_AFTER_DAYS
    chased = unpaid & (contact < cutoff) & (contact < clear) & (rng.random(n) < CHASE_SHARE)
    pays_soon = clear <= contact + PAYS_WITHIN_DAYS
    u = rng.random(n)
    outcome = np.where(pays_soon, np.where(u < 0.7, PROMISED, REACHED),
                       np.select([u < 0.4, u < 0.8], [PROMISED, NO_ANSWER], REFUSED))
    channel = rng.choice(len(CHANNELS), n, p=list(CHANNEL_P))
    early = rng.integers(0, 4, n)
    late = rng.integers(5, 15, n)
    row = np.flatnonzero(chased)
    kept = np.maximum(clear[row] - early[row], contact[row])
    return {"row": row, "contact": contact[row], "channel": channel[row],
            "outcome": outcome[row], "promised": outcome[row] == PROMISED,
            "date": np.where(pays_soon[row], kept, contact[row] + late[row])}


_EPOCH = np.datetime64("1970-01-01", "D")


def _days(values: pd.Series) -> np.ndarray:
    return (values.to_numpy().astype("datetime64[D]") - _EPOCH).astype(np.int64)


def _dates(days: np.ndarray) -> np.ndarray:
    return (days * 86_400).astype("datetime64[s]")


def loop_events(book: Book, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(promises, contacts) for ``book`` as one block (see the module docstring): what the
    generator writes for a book of up to ``CHUNK_ACCOUNTS`` accounts, from any Book."""
    inv = book.invoices[book.invoices["amount"] > 0].reset_index(drop=True)
    pay = book.payments
    if "method" in pay.columns:
        pay = pay[pay["method"].fillna("") != "write_off"]
    row = pd.Index(inv["invoice_id"]).get_indexer(pay["invoice_id"])
    pay, row = pay[row >= 0], row[row >= 0]
    amount = to_cents(inv["amount"].to_numpy())
    clear = clear_days(len(inv), row, _days(pay["payment_date"]),
                       to_cents(pay["amount"].to_numpy()), amount)
    d = draw(_days(inv["due_date"]), clear, cutoff=int(_days(pd.Series([book.last_date]))[0]),
             rng=block_rng(seed, 0))
    rows, promised = d["row"], d["row"][d["promised"]]
    contacts = pd.DataFrame({
        "contact_id": [f"CT{k:08d}" for k in range(len(rows))],
        "account_id": inv["account_id"].to_numpy()[rows],
        "contact_date": _dates(d["contact"]),
        "channel": np.array(CHANNELS, dtype=object)[d["channel"]],
        "outcome": np.array(OUTCOMES, dtype=object)[d["outcome"]]})
    promises = pd.DataFrame({
        "promise_id": [f"PR{k:08d}" for k in range(len(promised))],
        "account_id": inv["account_id"].to_numpy()[promised],
        "created_date": _dates(d["contact"][d["promised"]]),
        "promised_date": _dates(d["date"][d["promised"]]),
        "amount": inv["amount"].to_numpy()[promised],
        "invoice_id": inv["invoice_id"].to_numpy()[promised]})
    return conform("promises", promises), conform("contacts", contacts)


def with_loop_events(book: Book, *, seed: int = 0) -> Book:
    """``book`` with :func:`loop_events` as its promises and contacts."""
    promises, contacts = loop_events(book, seed=seed)
    return Book(invoices=book.invoices, payments=book.payments, accounts=book.accounts,
                disputes=book.disputes, promises=promises, contacts=contacts)
