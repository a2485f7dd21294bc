"""What the terminal shows from data: control characters escaped, never raw (an ANSI escape
in an account id must not recolour or rewrite the analyst's screen); long ids shown with a
visible ellipsis that keeps ids differing only at the end distinguishable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving.store import WorklistStore
from serving.worklist import clip, format_worklist, terminal_safe
from tests.serving.test_store import frames

ANSI = "\x1b[31mEVIL\x1b[0m"
# Raw control characters (C0 but newline, DEL, C1) and bidi overrides.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_terminal_safe_escapes_every_control_character() -> None:
    assert terminal_safe("A-001") == "A-001"
    assert terminal_safe(ANSI) == "\\x1b[31mEVIL\\x1b[0m"
    assert terminal_safe("ab\u202ecd\x07\r\n\x9b") == "ab\\u202ecd\\x07\\r\\n\\x9b"
    assert terminal_safe("one\ntwo\x1b", keep_newlines=True) == "one\ntwo\\x1b"
    assert terminal_safe("Zürich 東京 — ok") == "Zürich 東京 — ok"


def test_long_ids_keep_their_start_and_end_around_a_visible_ellipsis() -> None:
    a, b = "CUSTOMER-2024-000000000001", "CUSTOMER-2024-000000000002"
    assert clip("short", 14) == "short"
    assert len(clip(a, 14)) == 14 and "…" in clip(a, 14)
    assert clip(a, 14) != clip(b, 14)
    assert clip(a, 14).startswith("CUSTOME") and clip(a, 14).endswith("000001")


def _hostile_worklist():  # type: ignore[no-untyped-def]
    wl, ex, dr = frames(3)
    wl["account_id"] = [ANSI, "CUSTOMER-2024-000000000001", "CUSTOMER-2024-000000000002"]
    ex["account_id"] = list(wl["account_id"])
    wl["reason_1"] = ["paid late \x1b]0;pwned\x07", "ok", "ok"]
    wl["mitigating_reason"] = ["customer \u202eevil", None, None]
    return wl, ex, dr


def test_the_worklist_table_shows_data_escaped_and_ids_distinguishable() -> None:
    wl, _, _ = _hostile_worklist()
    text = format_worklist(wl, top=3)
    assert not RAW.search(text), repr(text)
    assert "\\x1b[31" in text and "\\x1b]0;pwned\\x07" in text and "\\u202eevil" in text
    assert "CUSTOME…000001" in text and "CUSTOME…000002" in text


def test_the_cli_prints_no_raw_control_character(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DELINQ_STORE_URL", raising=False)
    state = tmp_path / "state"
    wl, ex, dr = _hostile_worklist()
    with WorklistStore(f"sqlite:///{state / 'worklist.db'}") as store:
        run_id = store.begin_run(as_of=wl["as_of"].iloc[0].date(),
                                 meta={"model_versions": {"early_warning": "v\x1b[2J1"}})
        store.write_run(run_id, worklist=wl, explanations=ex, drift=dr,
                        meta={"message": "note \x1b[2J cleared"})
    for args in (["worklist", str(state)], ["runs", "--state-dir", str(state)],
                 ["runs", "--state-dir", str(state), "delete", "A\x1b[2JB"]):
        result = CliRunner().invoke(app, args)
        assert not RAW.search(result.output), (args, repr(result.output))
        assert "\\x1b" in result.output
