"""Reason codes: SHAP values turned into sentences with the account's own numbers.

:data:`TEMPLATES` (in ``serving._reason_table``) is the one table mapping every model
feature to a sentence template. Templates use ``str.format`` fields naming feature columns
(``{v}`` is the feature itself, ``{count}`` a share turned into a count) with a *format*
after the colon: ``int``, ``money`` (currency, thousands separators), ``pct`` (a 0-1 share
as percent), ``dec``/``absdec`` (one decimal), ``days`` ("1 day", "12 days"), ``span``
("45 days", "7 months", "2.5 years"), ``invoices``/``disputes`` (count with the noun),
``str``. ``variants`` pick another sentence by the value (e.g. "paid 3 days early" when the
mean lateness is negative), ``if_missing`` is the sentence when the value is missing (None:
the feature is skipped and the next reason is used) and ``detail`` is appended when its
fields are present (e.g. which invoice: "(INV-123, $1,200 open)").

Per account (:func:`reason_codes`): the three features with the largest positive SHAP
(risk-raising) and the one with the most negative SHAP (mitigating). For ``delinquent`` and
``late`` accounts the reasons always state the delinquency fact (how many days past due,
which invoice, how much is open): if the oldest-DPD reason is not among the three, it takes
the first free risk slot or replaces the third.

Vectorised for 1M accounts: the top-k choice is a numpy ``argpartition`` over the SHAP
matrix; sentences are rendered per feature (one pass over the accounts whose reason it is),
numbers are formatted with numpy arithmetic and Arrow string kernels only for the chosen
(account, feature) pairs, and ``reasons_json`` is assembled with the same kernels.
The sentence rendering lives in :mod:`serving.reason_render`; this module chooses the
reasons.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.spec import DELINQUENT_SEGMENTS, FEATURE_DIRECTION, SEGMENTS
from serving._reason_table import (
    FACT_FEATURE,
    POPULATION_NAMES,
    RESIDUE_TEMPLATE,
    TEMPLATES,
    WINDOW_BOUNDED,
    WINDOW_SLACK_DAYS,
    Template,
)
from serving.reason_render import (
    COUNT_FIELD,
    FORMATS,
    compile_template,
    fmt_str,
    json_number,
    json_str,
    render_reason,
    template_columns,
)

__all__ = [
    "FACT_FEATURE",
    "REASON_COLUMNS",
    "TEMPLATES",
    "Template",
    "missing_templates",
    "reason_codes",
    "render_reason",
    "typical_values",
]

REASON_COLUMNS = ("reason_1", "reason_2", "reason_3", "mitigating_reason", "reasons_json")
_N_RISK = 3
#: Accounts whose reasons are chosen and rendered at once. An account's reasons read only
#: its own row, so the work goes in blocks: the choice's (accounts x features) masks and
#: scores took ~1.3 KB per account beside the SHAP matrix (1.3 GB at 1M accounts, at the
#: nightly's peak when a model ranks them, issue 20); a block holds them for 64k accounts.
#: Per-block overhead (templates, Arrow calls) is ~10 ms.
BLOCK_ROWS = 65_536


def missing_templates(feature_names: Sequence[str]) -> list[str]:
    """Features among ``feature_names`` that have no template (should be empty)."""
    return [f for f in feature_names if f not in TEMPLATES]


# ------------------------------------------------------------------- selection


def _is_numeric(s: pd.Series) -> bool:
    return not isinstance(s.dtype, pd.CategoricalDtype) and pd.api.types.is_numeric_dtype(
        s.dtype
    )


def _gather(frame: pd.DataFrame, name: str, rows: np.ndarray) -> np.ndarray:
    """Values of column ``name`` at positions ``rows``: float64, or object for text."""
    s = frame[name]
    if _is_numeric(s):
        return pd.to_numeric(s).to_numpy(dtype=np.float64, na_value=np.nan)[rows]
    return s.iloc[rows].astype(object).to_numpy(dtype=object)


def _renderable(frame: pd.DataFrame, names: Sequence[str], templates: Mapping) -> np.ndarray:
    """(n, p) mask: the feature's sentence can be written for the account."""
    na = {c: frame[c].isna().to_numpy(dtype=bool) for c in frame.columns}
    cols = []
    for f in names:
        tmpl = templates[f]
        ok = ~na[f]
        needed = [c for c in compile_template(tmpl.text, f).columns
                  if not c.startswith(COUNT_FIELD + ":")]
        for c in [*needed, *([tmpl.count_of] if tmpl.count_of else [])]:
            if c != f:
                ok = ok & ~na[c]
        if tmpl.if_missing is not None:
            ok = ok | na[f]
        cols.append(ok)
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0), bool)


def _top_risk(shap: np.ndarray, ok: np.ndarray, k: int, group: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the k largest positive renderable SHAP values per row (sorted);
    with ``group`` (an id per column), at most one column of each group per row.

    k passes of ``argmax`` (each a contiguous sweep) beat ``argpartition`` + ``argsort``
    for k = 3 by about 3x on 1M x 60.
    """
    n, p = shap.shape
    score = np.where(ok & (shap > 0), shap, -np.inf)
    idx = np.zeros((n, k), dtype=np.int64)
    valid = np.zeros((n, k), dtype=bool)
    rows = np.arange(n)
    for s in range(min(k, p)):
        j = score.argmax(axis=1)
        idx[:, s] = j
        valid[:, s] = score[rows, j] > -np.inf
        if group is None:
            score[rows, j] = -np.inf
        else:
            score[group[None, :] == group[j][:, None]] = -np.inf
    return idx, valid


# ------------------------------------------------------------------- reason codes

_STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)


def _to_series(values: pa.Array, index: pd.Index) -> pd.Series:
    out = values.to_pandas(types_mapper={pa.string(): _STR_DTYPE}.get)
    out.index = index
    return out


def reason_codes(
    frame: pd.DataFrame,
    shap_values: np.ndarray,
    feature_names: Sequence[str],
    *,
    segment: Sequence[str] | np.ndarray | pd.Series | None = None,
    currency: str = "$",
    templates: Mapping[str, Template] = TEMPLATES,
    typical: Mapping[str, float] | None = None,
    population: str | None = None,
    history_days: float | None = None,
) -> pd.DataFrame:
    """Reason codes per account: top three risk-raising reasons and the top mitigating one.

    ``frame`` holds the account's feature values (and optional detail columns such as
    ``oldest_invoice_id``); ``shap_values`` is the ``(n, p)`` SHAP matrix of its model, in
    the order of ``feature_names`` (raw-score units, log-odds). ``segment`` enables the
    delinquency-fact rule for ``delinquent``/``late`` accounts and the residue fact for
    ``preventive`` accounts with an (immaterial) past-due amount.

    ``typical``: feature -> typical value (the median of the model's training population,
    ``DelinqModel.reference_profile``); with it, only features with a known risk direction
    (``features.spec.FEATURE_DIRECTION``) are cited, a risk reason only when the account's
    value is on the risky side of typical and a mitigating one only on the safe side, and
    each sentence ends with "; typical for <population>: <value>" (``population``: a model
    name of :data:`POPULATION_NAMES`, or the words themselves). ``history_days``: days of
    data before ``as_of``; a feature bounded by it (:data:`WINDOW_BOUNDED`) is left out
    when it only measures the data window. Two reasons of one account never state the
    same fact (:attr:`Template.fact`).

    Returns a frame on ``frame``'s index with string columns ``reason_1..3`` and
    ``mitigating_reason`` (missing when there is no such reason) and ``reasons_json``: a
    JSON list of ``{"feature", "value", "shap", "text", "direction"}`` with direction
    ``raises``, ``lowers``, or ``fact`` for a stated fact that is not a risk reason.
    Accounts are done :data:`BLOCK_ROWS` at a time (the same result as all at once).
    """
    n = len(frame)
    seg = None if segment is None else pd.Series(segment).to_numpy(dtype=object)
    if seg is not None and len(seg) != n:
        raise ValueError(f"segment has {len(seg)} values for {n} accounts")
    shap = np.asarray(shap_values)
    if shap.ndim != 2 or shap.shape[0] != n:
        raise ValueError(f"SHAP matrix shape {shap.shape} does not match ({n}, "
                         f"{len(feature_names)})")
    # one block at least: an empty frame gives the empty frame of the right columns
    return pd.concat([
        _reason_block(frame.iloc[a:a + BLOCK_ROWS], shap[a:a + BLOCK_ROWS], feature_names,
                      segment=None if seg is None else seg[a:a + BLOCK_ROWS],
                      currency=currency, templates=templates, typical=typical,
                      population=population, history_days=history_days)
        for a in range(0, max(n, 1), BLOCK_ROWS)])


def _reason_block(
    frame: pd.DataFrame,
    shap_values: np.ndarray,
    feature_names: Sequence[str],
    *,
    segment: Sequence[str] | np.ndarray | pd.Series | None,
    currency: str,
    templates: Mapping[str, Template],
    typical: Mapping[str, float] | None,
    population: str | None,
    history_days: float | None,
) -> pd.DataFrame:
    """:func:`reason_codes` of one block of accounts."""
    names = list(feature_names)
    lacking = missing_templates(names) if templates is TEMPLATES else [
        f for f in names if f not in templates
    ]
    if lacking:
        raise KeyError(f"no reason template for features: {lacking}")
    shap = np.asarray(shap_values, dtype=np.float64)
    n, p = len(frame), len(names)
    if shap.shape != (n, p):
        raise ValueError(f"SHAP matrix shape {shap.shape} does not match ({n}, {p})")

    ok = _renderable(frame, names, templates)
    risk_ok, mit_ok = ok.copy(), ok.copy()
    typ = np.full(p, np.nan)
    if typical is not None:
        typ = np.array([_typical(typical, f) for f in names])
        risky, safe = _sides(frame, names, typ)
        risk_ok &= risky
        mit_ok &= safe
    mit_ok &= np.array([templates[f].mitigates for f in names], dtype=bool)[None, :]
    if history_days is not None:
        for j, f in enumerate(names):
            if f in WINDOW_BOUNDED and _is_numeric(frame[f]):
                v = pd.to_numeric(frame[f]).to_numpy(dtype=np.float64, na_value=np.nan)
                bounded = v >= history_days - WINDOW_SLACK_DAYS
                risk_ok[:, j] &= ~bounded
                mit_ok[:, j] &= ~bounded
    group = _fact_groups(names, templates)
    risk_idx, risk_valid = _top_risk(shap, risk_ok, _N_RISK, group)

    # The stated fact: the delinquency fact for delinquent and late accounts, the residue
    # fact for preventive accounts past due by an immaterial amount. It keeps its slot when
    # chosen; otherwise reasons stating the same fact give way, then it takes the first free
    # risk slot or replaces the third.
    fact_rows = np.zeros(n, bool)
    residue_rows = np.zeros(n, bool)
    j_fact = names.index(FACT_FEATURE) if FACT_FEATURE in names else -1
    if segment is not None and j_fact >= 0 and n:
        seg = pd.Series(segment).astype(object).to_numpy(dtype=object)
        fact_rows = np.isin(seg, DELINQUENT_SEGMENTS) & ok[:, j_fact]
        if "past_due_amount" in frame.columns:
            owed = pd.to_numeric(frame["past_due_amount"]).to_numpy(np.float64, na_value=0.0)
            residue_rows = (seg == SEGMENTS[0]) & (owed > 0) & ok[:, j_fact]
        stated = fact_rows | residue_rows
        has = ((risk_idx == j_fact) & risk_valid).any(axis=1) & ~residue_rows
        todo = stated & ~has
        same = (group[risk_idx] == group[j_fact]) & risk_valid & todo[:, None]
        risk_valid &= ~same
        # compact the remaining reasons to the front, then place the fact
        order = np.argsort(~risk_valid, axis=1, kind="stable")
        risk_idx = np.take_along_axis(risk_idx, order, axis=1)
        risk_valid = np.take_along_axis(risk_valid, order, axis=1)
        slot = np.where(risk_valid.all(axis=1), _N_RISK - 1, np.argmin(risk_valid, axis=1))
        r = np.flatnonzero(todo)
        risk_idx[r, slot[r]] = j_fact
        risk_valid[r, slot[r]] = True
        if residue_rows.any():  # a residue fact renders with its own sentence (id p)
            pos = (risk_idx == j_fact) & residue_rows[:, None]
            risk_idx[pos] = p
        fact_rows = stated
    # The mitigating reason never states a fact already given.
    neg_ok = mit_ok & (shap < 0)
    for s in range(_N_RISK):
        chosen = np.where(risk_idx[:, s] < p, risk_idx[:, s], max(j_fact, 0))
        neg_ok &= ~((group[None, :] == group[chosen][:, None]) & risk_valid[:, s][:, None])
    neg_score = np.where(neg_ok, shap, np.inf)
    mit_idx = np.argmin(neg_score, axis=1) if p else np.zeros(n, np.int64)
    mit_valid = np.isfinite(neg_score[np.arange(n), mit_idx]) if p else np.zeros(n, bool)
    slots_idx = np.column_stack([risk_idx, mit_idx])
    slots_valid = np.column_stack([risk_valid, mit_valid])

    # One (account, slot) pair per reason to write, grouped by feature so each template
    # renders once over all the accounts it explains.
    rows, slots = np.nonzero(slots_valid)
    feats = slots_idx[rows, slots]
    order = np.argsort(feats, kind="stable")
    rows, slots, feats = rows[order], slots[order], feats[order]
    bounds = np.flatnonzero(np.diff(feats)) + 1
    pop = POPULATION_NAMES.get(population or "", population)
    texts: list[pa.Array] = []
    values: list[pa.Array] = []
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(feats)], strict=True):
        if start == stop:
            continue
        j = int(feats[start])
        residue = j == p
        feature = FACT_FEATURE if residue else names[j]
        tmpl = RESIDUE_TEMPLATE if residue else templates[feature]
        r = rows[start:stop]
        cols = {c: _gather(frame, c, r) for c in template_columns(feature, tmpl)
                if c in frame.columns}
        text = render_reason(feature, cols, currency=currency, templates={feature: tmpl})
        if not residue and pop and np.isfinite(typ[j]):
            text = pc.binary_join_element_wise(
                text, f"; typical for {pop}: {_typical_text(tmpl, feature, typ[j], currency)}",
                "")
        texts.append(text)
        own = cols[feature]
        values.append(json_number(own) if own.dtype.kind == "f" else json_str(fmt_str(own, "")))
    text = pa.concat_arrays(texts) if texts else pa.array([], pa.string())
    value = pa.concat_arrays(values) if values else pa.array([], pa.string())

    j_of = np.where(feats < p, feats, max(j_fact, 0))
    pair_shap = shap[rows, j_of] if p else np.zeros(0)
    direction = np.where(slots == _N_RISK, 2, 0)
    is_fact = (slots < _N_RISK) & fact_rows[rows] & (j_of == j_fact)
    weak = pair_shap <= 0
    if typical is not None and len(rows):
        weak |= ~risk_ok[rows, j_of]
    direction[is_fact & (weak | (feats == p))] = 1
    quoted = pa.array([json.dumps(f) for f in names] or [""], pa.string())
    item = pc.binary_join_element_wise(
        '{"feature":', quoted.take(pa.array(j_of, pa.int64())),
        ',"value":', value,
        ',"shap":', json_number(pair_shap),
        ',"text":"', text,
        pa.array(['","direction":"raises"}', '","direction":"fact"}',
                  '","direction":"lowers"}'])
        .take(pa.array(direction)),
        ",",
        "",
    )

    pos = np.full((n, _N_RISK + 1), -1, dtype=np.int64)
    pos[rows, slots] = np.arange(len(rows))
    out = pd.DataFrame(index=frame.index)
    items = []
    for s, col in enumerate(("reason_1", "reason_2", "reason_3", "mitigating_reason")):
        take = pa.array(pos[:, s], mask=pos[:, s] < 0)
        out[col] = _to_series(text.take(take), frame.index)
        items.append(item.take(take))
    out["reasons_json"] = _to_series(_json_list(items), frame.index)
    return out


def _json_list(items: Sequence[pa.Array]) -> pa.Array:
    """Each row's ``reasons_json``: its slots' items (JSON objects each ending with ",";
    null for an empty slot) in slot order, as one JSON list."""
    # Empty slots as "" (Arrow's null_handling="skip" drops all-null rows instead of
    # yielding "", so it is not used here), then the last item's "," trimmed.
    body = pc.utf8_rtrim(pc.binary_join_element_wise(*(pc.fill_null(i, "") for i in items),
                                                     ""), characters=",")
    return pc.binary_join_element_wise("[", body, "]", "")


def fact_reasons(facts: Sequence[tuple[str, np.ndarray, pa.Array]],
                 index: pd.Index) -> pd.DataFrame:
    """Reasons that state facts with no SHAP behind them (the aging rule's), in the frame
    :func:`reason_codes` returns: ``reason_k`` the text of the k-th fact (missing where
    that fact is not stated), no mitigating reason, and ``reasons_json`` the stated facts
    in order, each ``{"feature", "value" (rounded to 6 places, null when missing or
    infinite), "shap": null, "text", "direction": "fact"}``. ``facts``: at most three
    (feature, its value per row, its rendered text per row: null where not stated), the
    texts from :func:`render_reason` (JSON-safe sentences: ``fmt_str``)."""
    if len(facts) > _N_RISK:
        raise ValueError(f"at most {_N_RISK} facts, not {len(facts)}")
    n = len(index)
    out = pd.DataFrame(index=index)
    items = []
    for k, (feature, values, text) in enumerate(facts, start=1):
        out[f"reason_{k}"] = _to_series(text, index)
        items.append(pc.binary_join_element_wise(
            '{"feature":', json.dumps(feature), ',"value":', json_number(values),
            ',"shap":null,"text":"', text, '","direction":"fact"},', ""))
    for k in range(len(facts) + 1, _N_RISK + 1):
        out[f"reason_{k}"] = _to_series(pa.nulls(n, pa.string()), index)
    out["mitigating_reason"] = _to_series(pa.nulls(n, pa.string()), index)
    out["reasons_json"] = _to_series(_json_list(items), index)
    return out[list(REASON_COLUMNS)]


def typical_values(model: object) -> dict[str, float] | None:
    """Typical value (median of the training population) of each numeric feature of a
    model, from its drift reference (``DelinqModel.reference_profile``); None when the
    reference holds no medians (a model saved before they were recorded)."""
    profile = getattr(model, "reference_profile", None) or {}
    out = {name: float(ref["median"]) for name, ref in profile.get("features", {}).items()
           if ref.get("kind") == "numeric" and "median" in ref}
    return out or None


def _typical(typical: Mapping[str, float], feature: str) -> float:
    """The typical value of a feature with a known direction (NaN otherwise)."""
    if FEATURE_DIRECTION.get(feature, 0) == 0:
        return np.nan
    try:
        return float(typical.get(feature, np.nan))
    except (TypeError, ValueError):
        return np.nan


def _sides(frame: pd.DataFrame, names: Sequence[str], typ: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(n, p) masks: the value is on the risky / the safe side of typical (strictly; False
    for a missing value, a missing typical or a feature without a known direction)."""
    n = len(frame)
    risky = np.zeros((n, len(names)), bool)
    safe = np.zeros((n, len(names)), bool)
    for j, f in enumerate(names):
        d = FEATURE_DIRECTION.get(f, 0)
        if d == 0 or not np.isfinite(typ[j]) or not _is_numeric(frame[f]):
            continue
        v = pd.to_numeric(frame[f]).to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            risky[:, j] = d * (v - typ[j]) > 0
            safe[:, j] = d * (v - typ[j]) < 0
    return risky, safe


def _fact_groups(names: Sequence[str], templates: Mapping[str, Template]) -> np.ndarray:
    """Group id per feature: features stating one fact share an id."""
    keys = [templates[f].fact or f"feature:{f}" for f in names]
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.array([ids[k] for k in keys], dtype=np.int64)


def _typical_text(tmpl: Template, feature: str, value: float, currency: str) -> str:
    """The typical value written in the sentence's own format."""
    fmt = tmpl.typical_format
    if fmt is None:
        fmt = next((f for lit, name, f, _ in string.Formatter().parse(tmpl.text)
                    if name == "v"), None) or "dec"
    return str(FORMATS[fmt](np.array([value]), currency)[0])
