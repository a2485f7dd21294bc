"""Credits in the one openness rule: credit notes, overpayments and prepayments (DESIGN 3).

What an invoice owes at ``as_of`` is its amount less what was *applied* to it before
``as_of``. Applications are computed once per book (independent of ``as_of``) by replaying
each account's events day by day, all in whole cents:

- a payment is applied to its invoice up to what the invoice still owes; the excess (an
  overpayment) is a credit of the account on the payment's date;
- a payment dated before its invoice's issue date is a *prepayment*: held as credit on
  account from its own date and applied to its invoice on the issue date;
- a credit note (an invoice row with a negative amount) is applied to the invoice it
  references (when named, same account) up to what that invoice owes, the rest being a
  credit of the account; unnamed, it is a credit of the account on its date;
- at the end of each day the account's unapplied credit (the *pool*) is applied to its open
  invoices, oldest due first (ties: earlier issue, then invoice id), each up to what it
  owes. So credit left when nothing is open (the *credit on account*) is applied to the
  next invoices on their issue date, like a prepayment.

Within a day: issues, then payments, then credit notes, then the pool; every event of a day
is known from the next day on, so an application dated ``d`` uses only events dated ``<= d``
and is known exactly when ``d < as_of``: no look-ahead. An invoice never receives more than
its amount, so no open amount is negative.

Output: the applications as payment-like rows (invoice position, day, amount) grouped by
invoice and sorted by day (what the kernels read as payments), and the changes of each
account's credit on account (day, signed amount), sorted by day per account.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def needs_allocation(issue, amount_c, pay_ptr, pay_day, pay_c):
    """Whether some payment predates its invoice or some invoice is paid more than its
    amount (in cents): without those and without credit notes, applications are payments."""
    for i in range(len(issue)):
        total = 0
        for p in range(pay_ptr[i], pay_ptr[i + 1]):
            if pay_day[p] < issue[i]:
                return True
            total += pay_c[p]
        if total > amount_c[i]:
            return True
    return False


@nb.njit(cache=True)
def _apply(i, day, cents, rem, out_inv, out_day, out_c, n):
    """Record ``cents`` applied to invoice ``i`` on ``day``; returns the new row count."""
    rem[i] -= cents
    out_inv[n] = i
    out_day[n] = day
    out_c[n] = cents
    return n + 1


@nb.njit(cache=True)
def allocate(tol, acc_ptr, issue, due, amount_c, inv_rank, pay_ptr, pay_day, pay_c,
             cr_ptr, cr_day, cr_c, cr_ref):
    """Replay every account (see module docstring).

    Invoice arrays are in account order (``acc_ptr``); payments grouped by invoice
    (``pay_ptr``); credit notes grouped by account (``cr_ptr``), ``cr_ref`` the position of
    the invoice they name or -1. Amounts in cents (int64). ``tol``: the clearing tolerance
    in cents (an invoice owing ``tol`` or less is cleared and takes no pool credit).

    Returns (app_inv, app_day, app_cents, coa_acc, coa_day, coa_cents), unsorted.
    """
    n_acc = len(acc_ptr) - 1
    n_inv = len(issue)
    n_pay = len(pay_day)
    n_cr = len(cr_day)
    cap = 2 * (n_pay + n_cr + n_inv) + 1
    out_inv = np.empty(cap, np.int64)
    out_day = np.empty(cap, np.int64)
    out_c = np.empty(cap, np.int64)
    coa_acc = np.empty(2 * cap, np.int64)
    coa_day = np.empty(2 * cap, np.int64)
    coa_c = np.empty(2 * cap, np.int64)
    n = 0
    m = 0
    rem = amount_c.copy()
    for a in range(n_acc):
        lo, hi = acc_ptr[a], acc_ptr[a + 1]
        k_pay = pay_ptr[hi] - pay_ptr[lo]
        k_cr = cr_ptr[a + 1] - cr_ptr[a]
        k = (hi - lo) + k_pay + k_cr
        if k == 0:
            continue
        # events: key = day * 4 + kind (0 issue, 1 payment, 2 credit note)
        key = np.empty(k, np.int64)
        ref = np.empty(k, np.int64)
        owner = np.empty(k, np.int64)  # a payment's invoice
        e = 0
        for i in range(lo, hi):
            key[e] = np.int64(issue[i]) * 4
            ref[e] = i
            e += 1
            for p in range(pay_ptr[i], pay_ptr[i + 1]):
                eff = max(pay_day[p], issue[i])
                key[e] = np.int64(eff) * 4 + 1
                ref[e] = p
                owner[e] = i
                e += 1
                if pay_day[p] < issue[i]:  # prepayment: credit on account until issue
                    coa_acc[m] = a
                    coa_day[m] = pay_day[p]
                    coa_c[m] = pay_c[p]
                    coa_acc[m + 1] = a
                    coa_day[m + 1] = issue[i]
                    coa_c[m + 1] = -pay_c[p]
                    m += 2
        for q in range(cr_ptr[a], cr_ptr[a + 1]):
            r = cr_ref[q]
            eff = cr_day[q] if r < 0 else max(cr_day[q], issue[r])
            key[e] = np.int64(eff) * 4 + 2
            ref[e] = q
            e += 1
            if eff > cr_day[q]:  # names an invoice not issued yet: held until then
                coa_acc[m] = a
                coa_day[m] = cr_day[q]
                coa_c[m] = cr_c[q]
                coa_acc[m + 1] = a
                coa_day[m + 1] = eff
                coa_c[m + 1] = -cr_c[q]
                m += 2
        order = np.argsort(key, kind="mergesort")
        # open invoices by (due, issue, id rank): the pool's order
        inv_order = np.argsort(inv_rank[lo:hi], kind="mergesort")
        inv_order = inv_order[np.argsort(issue[lo:hi][inv_order], kind="mergesort")]
        inv_order = inv_order[np.argsort(due[lo:hi][inv_order], kind="mergesort")]
        pool = 0
        j = 0
        while j < k:
            day = key[order[j]] // 4
            while j < k and key[order[j]] // 4 == day:
                kind = key[order[j]] % 4
                x = ref[order[j]]
                if kind == 1:
                    i = owner[order[j]]
                    take = min(pay_c[x], max(rem[i], 0))
                    if take > 0:
                        n = _apply(i, day, take, rem, out_inv, out_day, out_c, n)
                    pool += pay_c[x] - take
                    if pay_c[x] > take:
                        coa_acc[m] = a
                        coa_day[m] = day
                        coa_c[m] = pay_c[x] - take
                        m += 1
                elif kind == 2:
                    r = cr_ref[x]
                    take = 0 if r < 0 else min(cr_c[x], max(rem[r], 0))
                    if take > 0:
                        n = _apply(r, day, take, rem, out_inv, out_day, out_c, n)
                    pool += cr_c[x] - take
                    if cr_c[x] > take:
                        coa_acc[m] = a
                        coa_day[m] = day
                        coa_c[m] = cr_c[x] - take
                        m += 1
                j += 1
            if pool > 0:
                for t in range(hi - lo):
                    i = lo + inv_order[t]
                    if issue[i] > day or rem[i] <= tol:
                        continue
                    take = min(pool, rem[i])
                    n = _apply(i, day, take, rem, out_inv, out_day, out_c, n)
                    pool -= take
                    coa_acc[m] = a
                    coa_day[m] = day
                    coa_c[m] = -take
                    m += 1
                    if pool == 0:
                        break
    return out_inv[:n], out_day[:n], out_c[:n], coa_acc[:m], coa_day[:m], coa_c[:m]
