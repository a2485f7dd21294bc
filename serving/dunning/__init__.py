"""Dunning: reminders on a ladder, never twice and never to the wrong customer (issue 22).

The library the nightly's dunning step (``pipelines.steps_dunning``) and ``delinq dunning
preview`` call; it never reads settings, "now" (clocks are injected) or Prefect.

- :mod:`serving.dunning.letters`: the letters (``LADDER``, ``PAYMENT_PLAN``,
  ``DISPUTE_ACK``), their variables (:func:`letter_context`) and Jinja2 templates
  (:func:`render_letter`; ``templates/README.md`` lists the variables), payment plans
  (:func:`installment_plan`, :func:`plan_promises`; an accepted one is recorded as promise
  events by :func:`record_plan`);
- :mod:`serving.dunning.formats`: amounts and dates per language (English, German);
- :mod:`serving.dunning.ladder`: :func:`suppression_reasons` (the one suppression
  decision, from plain frames) and :func:`plan_letters` (the ladder);
- :mod:`serving.dunning.delivery`: messages, :class:`Outbox` / :class:`SmtpSender`,
  :class:`RateLimit`, :func:`idempotency_key`;
- :mod:`serving.dunning.run`: one run (:func:`dunning_accounts`, :func:`send_planned`)
  with the store's send log as the idempotency record (:mod:`serving.dunning.tables`).
"""

from serving.dunning.delivery import Outbox, RateLimit, SmtpSender, idempotency_key
from serving.dunning.ladder import DunningPolicy, plan_letters, suppression_reasons
from serving.dunning.letters import (
    LADDER,
    LETTERS,
    Company,
    Letter,
    PlanTerms,
    installment_plan,
    letter_context,
    plan_promises,
    render_letter,
)
from serving.dunning.run import (
    DunningConfig,
    DunningResult,
    dunning_accounts,
    read_ladder,
    read_sends,
    record_plan,
    render_for,
    send_planned,
)

__all__ = [
    "LADDER", "LETTERS", "Company", "DunningConfig", "DunningPolicy", "DunningResult",
    "Letter", "Outbox", "PlanTerms", "RateLimit", "SmtpSender", "dunning_accounts",
    "idempotency_key", "installment_plan", "letter_context", "plan_letters", "plan_promises",
    "read_ladder", "read_sends", "record_plan", "render_for", "render_letter", "send_planned",
    "suppression_reasons",
]
