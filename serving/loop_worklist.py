"""The collections loop on the worklist (issue 17): holds and broken promises per account.

An account with an open promise to pay (``features.pit.promises``: its promised date plus
the grace days not passed) or snoozed by an analyst (``serving.loop_events``) is *held*:
it leaves the main ranking until then and is listed in the "promised / snoozed" view (the
worklist's ``hold``, ``hold_date`` and ``hold_ends`` columns, ranked after the main
ranking). A promise that broke takes the account back with the action "broken promise:
follow up" (``serving.actions``) and a reason naming the promise (:func:`broken_reason`).

Time semantics: promises known strictly before ``as_of``; a snooze holds while ``as_of``
is before its date (the workbench's own reading of ``snoozed_until``). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from features.contract.book import Book
from features.pit.promises import DEFAULT_GRACE_DAYS, account_promises, promise_state
from features.spec import as_day

#: Columns of :func:`loop_facts`, aligned with the accounts asked for.
LOOP_FACT_COLUMNS: Final = ("hold", "hold_date", "hold_ends", "days_since_broken_promise",
                            "broken_promised_date", "broken_amount")


def loop_facts(book: Book, *, as_of: date | pd.Timestamp, accounts: Sequence[str],
               grace_days: int = DEFAULT_GRACE_DAYS,
               snoozes: pd.DataFrame | None = None,
               pay_invoices: np.ndarray | None = None) -> pd.DataFrame:
    """Per account (in the order of ``accounts``, default index):

    - ``hold``: ``promise`` (an open promise), else ``snooze`` (snoozed until after
      ``as_of``), else None; ``hold_date``: the earliest open promise's promised date, or
      the snooze's date; ``hold_ends``: the first ``as_of`` back in the main ranking (the
      latest open promise's last day + 1, or the snooze's date);
    - ``days_since_broken_promise``: days since the latest promise broke (NaN when none
      broke, or one is open), with its ``broken_promised_date`` and ``broken_amount``.

    ``snoozes``: ``account_id``, ``snoozed_until`` (``serving.loop_events.LoopEvents``);
    ``pay_invoices``: the row in ``book.invoices`` of each payment's invoice when the caller
    has it (``features.pit.promises.promise_state``: the same facts, faster).
    """
    cut = pd.Timestamp(as_day(as_of))
    ids = pd.Index(pd.Series(accounts, dtype="str"))
    per = account_promises(promise_state(book, as_of=cut, grace_days=grace_days,
                                         pay_invoices=pay_invoices))
    per = per.set_index("account_id").reindex(ids)
    promised = per["open_promised_date"].notna().to_numpy()
    until = pd.Series(pd.NaT, index=ids, dtype="datetime64[s]")
    if snoozes is not None and len(snoozes):
        s = snoozes.drop_duplicates("account_id", keep="last").set_index("account_id")
        until = s["snoozed_until"].reindex(ids).astype("datetime64[s]")
    snoozed = (until > cut).to_numpy() & ~promised
    hold = np.where(promised, "promise", np.where(snoozed, "snooze", None))
    hold_date = np.where(promised, per["open_promised_date"].to_numpy(),
                         np.where(snoozed, until.to_numpy(), np.datetime64("NaT")))
    back = (per["open_last_day"] + pd.Timedelta(days=1)).to_numpy()
    hold_ends = np.where(promised, back, np.where(snoozed, until.to_numpy(),
                                                  np.datetime64("NaT")))
    broke = per["last_broken_resolved_date"]
    since = (cut - broke).dt.days.to_numpy(dtype=np.float64, na_value=np.nan)
    since = np.where(promised, np.nan, since)
    return pd.DataFrame({
        "hold": pd.Series(hold, dtype=object),
        "hold_date": pd.Series(hold_date).astype("datetime64[s]"),
        "hold_ends": pd.Series(hold_ends).astype("datetime64[s]"),
        "days_since_broken_promise": since,
        "broken_promised_date": per["last_broken_promised_date"].to_numpy(),
        "broken_amount": per["last_broken_amount"].to_numpy(dtype=np.float64),
    })


def broken_reason(promised_date: pd.Timestamp, amount: float, *, currency: str = "$") -> str:
    """The reason naming a broken promise: its promised date and amount."""
    return (f"broke a promise to pay {currency}{amount:,.2f} by "
            f"{pd.Timestamp(promised_date).date().isoformat()}")
