"""Numeric core of the synthetic book: per-account parameters and per-chunk events.

Everything here is plain numpy on integer day numbers (days since 1970-01-01) and integer
cents, so the public module (``features.synthetic``) can turn the arrays into pandas or
Arrow without Python loops. See ``features.synthetic`` for the story the numbers tell.

Determinism: account parameters come from the stream ``(seed, 0)``; the events of account
chunk ``c`` (``CHUNK_ACCOUNTS`` accounts each, fixed so results never depend on how the
caller batches) come from the stream ``(seed, 1, c)``.
"""

from __future__ import annotations

from typing import Final

import numpy as np

CHUNK_ACCOUNTS: Final = 50_000

SEGMENTS: Final = ("enterprise", "mid-market", "small")
SEGMENT_P: Final = np.array([0.10, 0.30, 0.60])
REGIONS: Final = ("north_america", "emea", "apac", "latam")
REGION_P: Final = np.array([0.45, 0.30, 0.15, 0.10])
ARCHETYPES: Final = ("prompt", "habitual_late", "seasonal", "deteriorating", "sudden_default")
PROMPT, HABITUAL, SEASONAL, DETERIORATING, DEFAULT = range(5)
ARCHETYPE_P: Final = np.array([0.42, 0.25, 0.12, 0.13, 0.08])
# How strongly latent fragility tilts the archetype draw (log-odds per unit of z).
ARCHETYPE_TILT: Final = np.array([-0.4, 0.3, 0.0, 0.6, 0.6])
TERMS: Final = np.array([15, 30, 45, 60])
TERMS_P: Final = np.array(  # by segment: enterprise, mid-market, small
    [[0.05, 0.35, 0.30, 0.30], [0.10, 0.50, 0.25, 0.15], [0.25, 0.60, 0.10, 0.05]]
)
# Mean days between invoices and median invoice amount (dollars), by segment.
GAP_DAYS: Final = np.array([6.0, 10.0, 17.0])
MEDIAN_AMOUNT: Final = np.array([15_000.0, 3_500.0, 800.0])
METHODS: Final = ("wire", "ach", "check", "card", "write_off")  # METHOD_P: first four
METHOD_P: Final = np.array(
    [[0.60, 0.35, 0.05, 0.00], [0.20, 0.55, 0.20, 0.05], [0.00, 0.35, 0.30, 0.35]]
)
REASONS: Final = ("pricing", "quantity", "damaged_goods", "not_received", "duplicate_billing")
NEVER: Final = np.iinfo(np.int64).max // 4  # "no such date" sentinel for day numbers


def _choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows sum to 1), vectorised."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return (u >= cum).sum(axis=1).clip(max=probs.shape[1] - 1)


#: Key of ``account_params``'s dict that makes lateness independent of history.
INDEPENDENT: Final = "independent_lateness"
#: Key of ``account_params``'s dict holding the day (epoch days, one-element array) from
#: which accounts pay like their mirror account (:func:`mirror_accounts`).
CHANGE_DAY: Final = "behaviour_change_day"
#: Key of the mirror account of each account (set with :data:`CHANGE_DAY`).
MIRROR: Final = "mirror_account"
#: After the change, days late = ``STRETCH`` x the mirror's usual days late + ``SHIFT``
#: (+ its noise): the most prompt become 20-45 days late, the habitually late prompt.
STRETCH, SHIFT = 2.0, 10.0


def mirror_accounts(base_delay: np.ndarray) -> np.ndarray:
    """Each account's mirror: the account at the opposite rank of the usual days late
    (the most habitually late pays like the most prompt, and the other way round)."""
    order = np.argsort(base_delay, kind="stable")
    mirror = np.empty_like(order)
    mirror[order] = order[::-1]
    return mirror


def account_params(n: int, seed: int, start: int, end: int) -> dict[str, np.ndarray]:
    """Draw every per-account parameter (arrays of length ``n``); days are epoch days."""
    rng = np.random.default_rng([seed, 0])
    seg = rng.choice(3, size=n, p=SEGMENT_P)
    region = rng.choice(len(REGIONS), size=n, p=REGION_P)
    z = rng.standard_normal(n)  # latent financial fragility ("latent_risk")
    logits = np.log(ARCHETYPE_P)[None, :] + z[:, None] * ARCHETYPE_TILT[None, :]
    probs = np.exp(logits)
    arch = _choice(rng, probs / probs.sum(axis=1, keepdims=True))
    terms = TERMS[_choice(rng, TERMS_P[seg])]
    method = _choice(rng, METHOD_P[seg])

    # 70% of accounts predate the window; the rest open during it (new customers).
    new = rng.random(n) < 0.30
    created = np.where(
        new,
        start + (rng.random(n) * max(end - start - 90, 1)).astype(np.int64),
        start - rng.integers(30, 3650, n),
    )
    a0 = np.maximum(created, start)

    # Payment behaviour relative to the due date (days; negative = early).
    base = np.select(
        [arch == PROMPT, arch == HABITUAL, arch == SEASONAL],
        [rng.normal(-2.0, 2.5, n), rng.uniform(4.0, 18.0, n), rng.normal(1.0, 3.0, n)],
        rng.normal(2.0, 4.0, n),
    ) + np.clip(2.0 * z, -3.0, 6.0)
    noise = np.select(
        [arch == PROMPT, arch == HABITUAL, arch == SEASONAL],
        [rng.uniform(1.5, 4.0, n), rng.uniform(4.0, 9.0, n), rng.uniform(3.0, 6.0, n)],
        rng.uniform(2.5, 7.0, n),
    )
    is_seasonal = arch == SEASONAL
    season_start = np.where(is_seasonal, rng.integers(1, 13, n), 0)
    season_len = np.where(is_seasonal, rng.integers(2, 4, n), 0)
    season_bump = np.where(is_seasonal, rng.uniform(18.0, 40.0, n), 0.0)

    # Distress episode (deteriorating): ramp up, then either recover or fail (stop paying).
    is_det = arch == DETERIORATING
    lo, hi = a0 + 60, np.maximum(end - 30, a0 + 61)
    t0 = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    ramp = rng.integers(60, 181, n)
    peak_extra = rng.uniform(25.0, 70.0, n)
    fails = rng.random(n) < 0.45
    plateau = rng.integers(30, 121, n)
    recover_start = t0 + ramp + plateau
    fail_date = t0 + ramp + rng.integers(0, 61, n)
    # Sudden default: fine until the default date (possibly after the window), then nothing.
    is_def = arch == DEFAULT
    default_date = a0 + 120 + (rng.random(n) * np.maximum(end + 180 - a0 - 120, 1)).astype(
        np.int64
    )
    precursor = np.where(rng.random(n) < 0.3, rng.uniform(5.0, 15.0, n), 0.0)

    stop_paying = np.full(n, NEVER, dtype=np.int64)
    stop_paying = np.where(is_det & fails, fail_date, stop_paying)
    stop_paying = np.where(is_def, default_date, stop_paying)
    # Sellers put a non-paying account on credit hold some weeks later: billing stops.
    hold_lag = np.where(is_def, rng.integers(20, 61, n), rng.integers(30, 76, n))
    billing_stop = np.where(stop_paying < NEVER, stop_paying + hold_lag, end)
    active_end = np.minimum(end, billing_stop)

    rate = (1.0 / GAP_DAYS[seg]) * rng.lognormal(-0.08, 0.4, n)
    span = np.maximum(active_end - a0 + 1, 0)
    n_inv = rng.poisson(rate * span)

    mu = np.log(MEDIAN_AMOUNT[seg]) + rng.normal(0.0, 0.5, n)
    # Credit limit: about (terms + one month) of billing, tighter for fragile accounts,
    # so utilisation carries the latent risk.
    monthly = np.exp(mu + 0.6**2 / 2) * rate * 30.0
    limit = monthly * (terms / 30.0 + 1.0) * np.exp(0.6 - 0.35 * z + rng.normal(0, 0.25, n))
    limit = np.maximum(np.round(limit / 1000.0) * 1000.0, 1000.0)

    return {
        "segment": seg,
        "region": region,
        "latent_risk": z,
        "archetype": arch,
        "terms": terms,
        "method": method,
        "created": created,
        "active_start": a0,
        "active_end": active_end,
        "n_invoices": n_inv,
        "log_amount_mu": mu,
        "credit_limit": limit,
        "base_delay": base,
        "noise_sd": noise,
        "admin_hold_p": 0.02 + 0.01 * np.maximum(z, 0.0),
        "dispute_rate": np.minimum(0.02 * np.exp(0.5 * z), 0.15),
        "partial_rate": np.minimum(0.04 * np.exp(0.5 * z), 0.25),
        "season_start": season_start,
        "season_len": season_len,
        "season_bump": season_bump,
        "distress_start": np.where(is_det, t0, NEVER),
        "distress_ramp": ramp,
        "distress_peak_extra": np.where(is_det, peak_extra, 0.0),
        "recover_start": np.where(is_det & ~fails, recover_start, NEVER),
        "default_precursor": np.where(is_def, precursor, 0.0),
        "stop_paying": stop_paying,
        "billing_stop": np.where(stop_paying < NEVER, billing_stop, NEVER),
    }


def chunk_events(
    p: dict[str, np.ndarray], lo: int, hi: int, *, seed: int, chunk: int, end: int
) -> dict[str, dict[str, np.ndarray]]:
    """Invoices, payments and disputes of accounts ``[lo, hi)`` as arrays.

    Invoice rows are ordered by (account, issue day); ``acc`` is the global account index.
    Payments (ordered by invoice, then instalment) and disputes carry ``inv``, the row
    index into this chunk's invoices. Rare effects draw random numbers only for the rows
    they touch, which keeps this at a few hundred nanoseconds per invoice.
    """
    rng = np.random.default_rng([seed, 1, chunk])
    cnt = p["n_invoices"][lo:hi]
    acc = np.repeat(np.arange(lo, hi, dtype=np.int64), cnt)
    m = len(acc)
    a0 = p["active_start"][acc]
    offset = (rng.random(m) * (p["active_end"][acc] - a0 + 1)).astype(np.int64)
    # Sorting (account, day) keys orders days within each account; accounts stay in order.
    issue = a0 + np.sort(acc * (1 << 24) + offset) - acc * (1 << 24)
    terms = p["terms"][acc]
    due = issue + terms
    amount = np.maximum(
        np.round(np.exp(p["log_amount_mu"][acc] + 0.6 * rng.standard_normal(m)) * 100.0), 2500
    ).astype(np.int64)

    # Days late relative to due: the account's habit, noise, and occasional admin holds.
    late = p["base_delay"][acc] + p["noise_sd"][acc] * rng.standard_normal(m)
    hold = np.flatnonzero(rng.random(m) < p["admin_hold_p"][acc])
    late[hold] += rng.uniform(20.0, 60.0, len(hold))
    sea = np.flatnonzero(p["season_len"][acc] > 0)
    sea_acc = acc[sea]
    due_month = due[sea].astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12
    in_season = (due_month + 1 - p["season_start"][sea_acc]) % 12 < p["season_len"][sea_acc]
    late[sea] += np.where(in_season, p["season_bump"][sea_acc], 0.0)
    # Distress level s in [0, 1]: ramps up from distress_start, decays after recovery.
    s = np.zeros(m)
    det = np.flatnonzero(p["distress_start"][acc] < NEVER)
    det_acc, det_issue = acc[det], issue[det]
    s_det = np.clip((det_issue - p["distress_start"][det_acc]) / p["distress_ramp"][det_acc], 0, 1)
    rec = p["recover_start"][det_acc]
    s_det *= np.where(rec < NEVER, np.clip(1.0 - (det_issue - rec) / 90.0, 0.0, 1.0), 1.0)
    s[det] = s_det
    late[det] += s_det * p["distress_peak_extra"][det_acc]
    stop = p["stop_paying"][acc]
    pre = np.flatnonzero(p["default_precursor"][acc] > 0)
    ramp_in = np.clip((issue[pre] - (stop[pre] - 60)) / 60.0, 0.0, 1.0)
    late[pre] += p["default_precursor"][acc[pre]] * ramp_in
    if CHANGE_DAY in p:
        # Behaviour reverses on the change day: every invoice issued from then on is paid
        # with the mirror account's habit, stretched (no season, distress or default), so
        # the history before the change ranks the accounts the wrong way round. Its own
        # random stream: the draws above are the unchanged book's.
        after = np.flatnonzero(issue >= p[CHANGE_DAY][0])
        mirrored = p[MIRROR][acc[after]]
        noise = np.random.default_rng([seed, 3, chunk]).standard_normal(len(after))
        late[after] = (STRETCH * p["base_delay"][mirrored] + SHIFT
                       + p["noise_sd"][mirrored] * noise)
        s[after] = 0.0
        stop = stop.copy()
        stop[after] = NEVER
    if INDEPENDENT in p:
        # Lateness independent of history: every invoice's days late is drawn from the
        # whole chunk's (same marginal), nobody stops paying, no distress: an account's
        # past says nothing about its next invoice (its open invoices still do: more of
        # them, or older ones, are more chances to cross; see generate_book_with_truth).
        late = late[rng.permutation(m)]
        s[:] = 0.0
        stop = np.full(m, NEVER, dtype=np.int64)
        # disputes and instalments (which delay payment) at the book's mean rates, not
        # the account's own: they would carry its habits from invoice to invoice
        dispute_p = np.full(m, p["dispute_rate"].mean())
        partial_p = np.full(m, p["partial_rate"].mean())
    else:
        dispute_p, partial_p = p["dispute_rate"][acc], p["partial_rate"][acc]
    pay = np.maximum(due + np.round(late).astype(np.int64), issue)

    # Disputes hold the payment until resolution (+ a few days to process).
    dis = np.flatnonzero(rng.random(m) < dispute_p + 0.05 * s)
    k = len(dis)
    opened = issue[dis] + 3 + (rng.random(k) * (terms[dis] + 8)).astype(np.int64)
    resolved = opened + 1 + np.round(rng.lognormal(np.log(21.0), 0.7, k)).astype(np.int64)
    pay[dis] = np.maximum(pay[dis], resolved + rng.integers(1, 11, k))

    # Balances never paid: rare write-offs, more in distress, and everything a failed or
    # defaulted account owes from the day it stops paying.
    never = (rng.random(m) < 0.002 + 0.15 * s) | (pay >= stop)
    partial = ~never & (rng.random(m) < partial_p + 0.4 * s)
    # One payment in full (most invoices).
    full = np.flatnonzero(~never & ~partial)
    rows = [(full, np.zeros(len(full), np.int64), pay[full], amount[full])]
    # Two or three instalments, the last on the scheduled day, 7-30 days apart.
    pi = np.flatnonzero(partial)
    k = len(pi)
    three = rng.random(k) < 0.3
    gap = rng.integers(7, 31, k)
    f1 = np.where(three, rng.uniform(0.2, 0.45, k), rng.uniform(0.25, 0.75, k))
    f2 = f1 + rng.uniform(0.2, 0.4, k)
    a, last, first_day = amount[pi], pay[pi], issue[pi]
    c1 = np.floor(a * f1).astype(np.int64)
    c2 = np.where(three, np.floor(a * f2).astype(np.int64), a)
    d0 = np.maximum(np.where(three, last - 2 * gap, last - gap), first_day)
    d1 = np.maximum(np.where(three, last - gap, last), first_day)
    rows += [(pi, np.zeros(k, np.int64), d0, c1), (pi, np.ones(k, np.int64), d1, c2 - c1)]
    rows += [(pi[three], np.full(three.sum(), 2), last[three], (a - c2)[three])]
    # 40% of never-paid invoices got one partial payment first (before the account stopped).
    ni = np.flatnonzero(never)
    ni = ni[rng.random(len(ni)) < 0.4]
    nd = np.maximum(due[ni] + rng.integers(0, 46, len(ni)), issue[ni])
    na = np.floor(amount[ni] * rng.uniform(0.2, 0.6, len(ni))).astype(np.int64)
    ok = nd < stop[ni]
    rows += [(ni[ok], np.zeros(ok.sum(), np.int64), nd[ok], na[ok])]
    # The seller writes the unpaid rest off 120-270 days after due: a clearing row with
    # method "write_off" (as ERPs clear such invoices with a credit document).
    wo = np.flatnonzero(never)
    part_paid = np.zeros(m, dtype=np.int64)
    part_paid[ni[ok]] = na[ok]
    wo_day = due[wo] + rng.integers(120, 271, len(wo))
    rows += [(wo, np.ones(len(wo), np.int64), wo_day, amount[wo] - part_paid[wo])]
    n_cash = sum(len(r[0]) for r in rows) - len(wo)

    inv, kth, pdate, pamt = (np.concatenate(c) for c in zip(*rows, strict=True))
    write_off = np.arange(len(inv)) >= n_cash
    keep = np.flatnonzero(pdate <= end)
    order = keep[np.argsort(inv[keep] * 4 + kth[keep])]
    has = opened <= end
    return {
        "invoices": {"acc": acc, "issue": issue, "due": due, "amount": amount, "terms": terms},
        "payments": {
            "inv": inv[order],
            "date": pdate[order],
            "amount": pamt[order],
            "write_off": write_off[order],
        },
        "disputes": {
            "inv": dis[has],
            "opened": opened[has],
            "resolved": np.where(resolved <= end, resolved, NEVER)[has],
            "reason": rng.integers(0, len(REASONS), len(opened))[has],
        },
    }
