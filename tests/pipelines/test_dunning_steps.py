"""The dunning step over a published run: behind dunning.enabled, only after a run that
passed the plausibility checks, idempotent per as_of, a send log per run; the preview;
the SMTP password never a flow-run parameter."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.contract.io import write_book
from pipelines.settings import Settings, load_settings
from pipelines.steps_dunning import preview, run_dunning
from serving.store import WorklistStore
from tests.serving.dunning.test_letters import AS_OF, tiny_book
from tests.serving.test_store import frames


def _state(tmp_path: Path, *, accepted: list[str] | None = None,
           **dunning: object) -> tuple[Settings, Path]:
    settings = load_settings(data_dir=tmp_path / "state",
                             dunning={"enabled": True, **dunning})
    book = tmp_path / "staged"
    write_book(tiny_book(), book)
    wl, ex, dr = frames(2, as_of=AS_OF)
    wl["account_id"] = pd.Series(["A", "B"], dtype="str")
    ex["account_id"] = pd.Series(["A", "B"], dtype="str")
    wl["open_balance"] = [1500.0, 1234.5]
    wl["past_due_amount"] = [1300.0, 1234.5]
    with WorklistStore(settings.resolved_store_url, upgrade=True,
                       export_dir=tmp_path / "exports") as store:
        run_id = store.begin_run(as_of=AS_OF, meta={})
        store.write_run(run_id, worklist=wl, explanations=ex, drift=dr,
                        meta={"accepted_anomalies": accepted or []})
    return settings, book


def test_step_sends_once_per_as_of_and_writes_a_send_log(tmp_path: Path) -> None:
    settings, book = _state(tmp_path)
    summary = run_dunning(settings=settings, book=book, as_of=AS_OF)
    assert summary.ran and summary.sent_by_level == {"first_notice": 2}
    outbox = tmp_path / "state" / "dunning" / "outbox" / AS_OF.isoformat()
    assert len(list(outbox.glob("*.eml"))) == 2
    log = pd.read_csv(summary.log_path)
    assert list(log.columns) == ["account_id", "letter", "address", "status", "reason",
                                 "template", "where"]
    assert set(log["status"]) == {"sent"}
    again = run_dunning(settings=settings, book=book, as_of=AS_OF)
    assert again.sent_by_level == {} and again.not_sent_by_reason == {"too_soon": 2}
    assert len(list(outbox.glob("*.eml"))) == 2
    assert "first_notice 2" in summary.lines()[0]
    assert "| first_notice | 2 |" in summary.markdown()


def test_step_is_off_unless_enabled_and_after_a_plausible_published_run(tmp_path: Path) -> None:
    settings, book = _state(tmp_path / "a", accepted=["totals_jump: open balance +80%"])
    refused = run_dunning(settings=settings, book=book, as_of=AS_OF)
    assert not refused.ran and "plausibility" in refused.message
    off = run_dunning(settings=settings.model_copy(update={
        "dunning": settings.dunning.model_copy(update={"enabled": False})}), book=book,
        as_of=AS_OF)
    assert not off.ran and "dunning.enabled" in off.message
    settings, book = _state(tmp_path / "b")
    none = run_dunning(settings=settings, book=book, as_of=AS_OF.replace(day=12))
    assert not none.ran and "no published run" in none.message


def test_preview_prints_the_letter_and_sends_nothing(tmp_path: Path) -> None:
    settings, book = _state(tmp_path)
    text = preview(settings=settings, book=book, account_id="B")
    assert "would send first_notice" in text
    assert "To: buchhaltung@mueller.example.de" in text
    assert "1.234,50 $" in text and "31. Januar 2024" in text
    plan = preview(settings=settings, book=book, account_id="A", letter="payment_plan")
    assert "1. March 26, 2024: $400.00" in plan
    assert not (tmp_path / "state" / "dunning" / "outbox").exists()
    with pytest.raises(LookupError):
        preview(settings=settings, book=book, account_id="nobody")


def test_smtp_password_is_a_secret_never_a_flow_parameter(monkeypatch) -> None:
    from pipelines.flows import settings_params

    monkeypatch.setenv("DELINQ_DUNNING__SMTP_PASSWORD", "pw-from-env")
    settings = load_settings()
    assert "pw-from-env" not in repr(settings)
    assert "pw-from-env" in settings.secrets()
    params = settings_params(settings)
    assert "smtp_password" not in params["dunning"]
    assert "pw-from-env" not in str(params)
