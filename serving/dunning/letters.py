"""Dunning letters: the ladder's levels, what a letter says, and rendering it.

Letters are Jinja2 files the team edits (``serving/dunning/templates``; its README lists
every variable): per letter ``<letter>.txt`` (first line ``Subject: ...``, then the plain
text) and ``<letter>.html`` (autoescaped: an account name holding HTML or script is text).
A template folder given in the settings (``dunning.templates_dir``) is searched first, so
a team overrides a letter without touching the package; ``<letter>.<language>.txt`` /
``.html`` is preferred for an account of that language. Each file states its version on
its first line (``{# version: N #}``); the send log records ``<letter>@<version>``.

Letters list the account's own open invoices (``features.open_invoices``: the features'
openness rule, net of payments and applied credits; an invoice fully offset by credits is
not open, a flagged one is not in the book) except disputed ones, oldest due first, and
the total due net of the account's credit on account, never negative. Amounts are in the
book's currency, formatted with dates for the account's language
(:mod:`serving.dunning.formats`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import jinja2
import pandas as pd

from serving.dunning.formats import language_of, long_date, money

PRE_DUE: Final = "pre_due"
FIRST_NOTICE: Final = "first_notice"
SECOND_NOTICE: Final = "second_notice"
FINAL_NOTICE: Final = "final_notice"
#: The ladder, in order: a reminder before the due date, then three past-due notices.
LADDER: Final = (PRE_DUE, FIRST_NOTICE, SECOND_NOTICE, FINAL_NOTICE)
#: The past-due notices (the ladder after the pre-due reminder).
NOTICES: Final = LADDER[1:]
PAYMENT_PLAN: Final = "payment_plan"
DISPUTE_ACK: Final = "dispute_ack"
#: Every letter with a template.
LETTERS: Final = (*LADDER, PAYMENT_PLAN, DISPUTE_ACK)

#: The package's templates (the default; ``templates_dir`` overrides per file).
TEMPLATES: Final = Path(__file__).with_name("templates")
_VERSION = re.compile(r"\{#-?\s*version:\s*(\S+)\s*-?#\}")


@dataclass(frozen=True)
class Company:
    """Who writes: ``name``, ``payment_link`` (``{account_id}`` is replaced by the
    account's id), ``sender`` (the From address) and the book's ``currency`` (ISO code,
    used when the invoices carry none)."""

    name: str = "Example Wholesale Ltd"
    payment_link: str = "https://pay.example.com/{account_id}"
    sender: str = "receivables@example.com"
    currency: str = "USD"


@dataclass(frozen=True)
class Letter:
    """A rendered letter: ``subject``, ``text`` and ``html`` bodies, the ``template``
    (``<letter>@<version>``) and the ``language`` it was formatted for."""

    letter: str
    subject: str
    text: str
    html: str
    template: str
    language: str


@dataclass(frozen=True)
class PlanTerms:
    """A payment plan's schedule (settings ``dunning.plan_*``): at most ``installments``
    payments every ``interval_days`` days from the first, none below ``min_amount`` (book
    currency); fewer installments when the total is small."""

    installments: int = 3
    min_amount: float = 100.0
    interval_days: int = 30


def installment_plan(total: float, *, first_date: date, terms: PlanTerms) -> list[
        tuple[date, float]]:
    """``(date, amount)`` of each installment of ``total`` (book currency): equal cents,
    the remainder on the last; ``[]`` when nothing is due."""
    cents = round(total * 100)
    if cents <= 0:
        return []
    n = max(1, min(terms.installments, int(cents // round(terms.min_amount * 100) or 1)))
    share = cents // n
    amounts = [share] * (n - 1) + [cents - share * (n - 1)]
    return [(first_date + timedelta(days=i * terms.interval_days), a / 100)
            for i, a in enumerate(amounts)]


def plan_promises(account_id: str, plan: list[tuple[date, float]], *,
                  created_date: date) -> pd.DataFrame:
    """An accepted plan as DESIGN section 3's ``promises`` rows (one per installment,
    ``promise_id`` ``plan-<account>-<n>``): what the collections loop reads."""
    return pd.DataFrame({
        "promise_id": [f"plan-{account_id}-{i + 1}" for i in range(len(plan))],
        "account_id": [account_id] * len(plan),
        "created_date": pd.to_datetime([created_date] * len(plan)).astype("datetime64[s]"),
        "promised_date": pd.to_datetime([d for d, _ in plan]).astype("datetime64[s]"),
        "amount": [a for _, a in plan],
        "invoice_id": pd.Series([None] * len(plan), dtype="str"),
    })


def letter_context(
    *,
    letter: str,
    account: dict[str, Any],
    invoices: pd.DataFrame,
    credit_on_account: float,
    as_of: date,
    company: Company,
    currency: str | None = None,
    plan_terms: PlanTerms | None = None,
) -> dict[str, Any]:
    """The variables of a letter (the templates' README lists them).

    ``account``: the accounts-table row (``account_id``, ``name``, ``contact_name``,
    ``language``, ...); ``invoices``: the account's rows of ``features.open_invoices`` at
    ``as_of``; ``credit_on_account``: its unapplied credit (book currency, >= 0).
    Disputed invoices are left out of the list and the totals (``disputed_invoices`` holds
    them for the dispute acknowledgement).
    """
    if letter not in LETTERS:
        raise ValueError(f"unknown letter {letter!r}; one of {', '.join(LETTERS)}")
    lang = language_of(account.get("language"))
    cur = (currency or company.currency).upper()
    listed = invoices[~invoices["disputed"].astype(bool)]
    disputed = invoices[invoices["disputed"].astype(bool)]
    open_total = float(listed["amount_open"].sum())
    past_due = float(listed.loc[listed["days_past_due"] > 0, "amount_open"].sum())
    credit = max(float(credit_on_account or 0.0), 0.0)
    total_due = max(open_total - credit, 0.0)
    account_id = str(account["account_id"])

    def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{"invoice_id": str(r.invoice_id), "amount": money(r.amount, cur, lang),
                 "amount_open": money(r.amount_open, cur, lang),
                 "due_date": long_date(r.due_date, lang),
                 "days_past_due": max(int(r.days_past_due), 0),
                 "past_due": int(r.days_past_due) > 0}
                for r in frame.itertuples(index=False)]

    plan = []
    if letter == PAYMENT_PLAN:
        first = as_of + timedelta(days=(plan_terms or PlanTerms()).interval_days // 2 or 1)
        plan = [{"number": i + 1, "due_date": long_date(d, lang), "amount": money(a, cur, lang)}
                for i, (d, a) in enumerate(installment_plan(
                    total_due, first_date=first, terms=plan_terms or PlanTerms()))]
    name = account.get("name")
    return {
        "letter": letter,
        "language": lang,
        "company_name": company.name,
        "payment_link": company.payment_link.replace("{account_id}", account_id),
        "account_id": account_id,
        "account_name": name if isinstance(name, str) and name else account_id,
        "contact_name": account.get("contact_name") if isinstance(
            account.get("contact_name"), str) else None,
        "currency": cur,
        "as_of": long_date(as_of, lang),
        "invoices": rows(listed),
        "disputed_invoices": rows(disputed),
        "open_total": money(open_total, cur, lang),
        "past_due_total": money(past_due, cur, lang),
        "credit_on_account": money(credit, cur, lang) if credit > 0 else None,
        "total_due": money(total_due, cur, lang),
        "plan": plan,
    }


@lru_cache(maxsize=8)
def _environment(templates_dir: str | None) -> jinja2.Environment:
    folders = [templates_dir] if templates_dir else []
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([*folders, str(TEMPLATES)]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",),
                                            default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails, never blank
        keep_trailing_newline=True,
    )


def _pick(env: jinja2.Environment, letter: str, language: str, ext: str) -> jinja2.Template:
    return env.select_template([f"{letter}.{language}.{ext}", f"{letter}.{ext}"])


def template_version(template: jinja2.Template) -> str:
    """The ``{# version: N #}`` of a template file (``?`` when it states none)."""
    source = Path(template.filename or "").read_text(encoding="utf-8") if (
        template.filename) else ""
    found = _VERSION.search(source)
    return found.group(1) if found else "?"


def render_letter(context: dict[str, Any], *, templates_dir: Path | None = None) -> Letter:
    """Render the letter of ``context`` (:func:`letter_context`): the text template's first
    line is ``Subject: ...``; the HTML template is autoescaped."""
    env = _environment(str(templates_dir) if templates_dir else None)
    letter, lang = context["letter"], context["language"]
    text_t = _pick(env, letter, lang, "txt")
    html_t = _pick(env, letter, lang, "html")
    head, _, body = text_t.render(context).lstrip("\n").partition("\n")
    if not head.startswith("Subject:"):
        raise ValueError(f"{text_t.filename}: the first line must be 'Subject: ...'")
    subject = " ".join(head[len("Subject:"):].split())  # one line: no header injection
    return Letter(letter=letter, subject=subject, text=body.lstrip("\n"),
                  html=html_t.render(context), template=f"{letter}@{template_version(text_t)}",
                  language=lang)
