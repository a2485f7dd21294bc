"""Nightly scoring: actions, worklist rendering, and a tiny book scored end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving import actions as A
from serving.worklist import format_worklist
from tests.factories import STATE_AS_OF

# (the action rules are tested in tests/serving/test_actions.py)


# ------------------------------------------------------------------------- worklist text


def _worklist_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": [2, 1],
            "account_id": ["A-2", "A-1"],
            "segment": ["early", "late"],
            "open_balance": [1000.0, 25_000.0],
            "probability": [0.25, 0.8],
            "priority": [250.0, 20_000.0],
            "action": ["pre-due call", "escalate to agency"],
            "reason_1": ["62% of the open balance is past due", "oldest open invoice is 95 days"],
            "reason_2": [None, "4 of the last 6 invoices were paid 15+ days late"],
            "reason_3": [None, None],
            "mitigating_reason": ["12 years a customer", None],
        }
    )


def test_format_worklist_is_readable() -> None:
    text = format_worklist(_worklist_rows(), top=10)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["rank", "account", "segment"]
    first = lines[2]
    assert first.split()[:3] == ["1", "A-1", "late"] and "25,000" in first and "80%" in first
    assert "20,000" in first and "escalate to agency" in first
    assert lines[3].strip().startswith("why: oldest open invoice is 95 days; 4 of the last 6")
    assert "but: 12 years a customer" in text
    assert format_worklist(_worklist_rows(), top=1).count("why:") == 1
    assert "(1 of 2 accounts shown)" in format_worklist(_worklist_rows(), top=1)


def test_format_empty_worklist() -> None:
    assert "empty" in format_worklist(_worklist_rows().iloc[:0])
    with pytest.raises(ValueError):
        format_worklist(_worklist_rows(), top=0)


# ------------------------------------------------------------------------- end to end

AS_OF = STATE_AS_OF


@pytest.fixture(scope="module")
def book(trained_state):
    return trained_state.book


@pytest.fixture(scope="module")
def models(trained_state):
    """Both champions, trained on the book's history known at AS_OF (session state)."""
    return trained_state.models


@pytest.fixture(scope="module")
def result(book, models):
    from serving.score import score_book

    return score_book(book, as_of=AS_OF.date(), models=models, table_budget_mb=64)


def test_each_account_gets_the_model_of_its_segment(result, book, models) -> None:
    from features import build_features
    from serving.score import MODEL_OF_SEGMENT

    wl = result.worklist
    feats = build_features(book, as_of=AS_OF.date())
    assert sorted(wl["account_id"]) == sorted(feats["account_id"])
    assert (wl["model"] == wl["segment"].map(MODEL_OF_SEGMENT)).all()
    assert set(wl["model"]) == {"early_warning", "persistence"}
    # The probability is the calibrated probability of that model.
    merged = feats.merge(wl[["account_id", "model", "probability"]], on="account_id")
    for name, model in models.items():
        rows = merged[merged["model"] == name]
        np.testing.assert_allclose(rows["probability"], model.risk(rows), atol=1e-9)


def test_priority_rank_and_order(result) -> None:
    wl = result.worklist
    np.testing.assert_allclose(wl["priority"], wl["probability"] * wl["open_balance"])
    assert list(wl["rank"]) == list(range(1, len(wl) + 1))
    key = list(zip(-wl["priority"], wl["account_id"], strict=True))
    assert key == sorted(key)
    assert (wl["as_of"] == AS_OF).all()
    assert result.meta["n_accounts"] == len(wl)
    assert set(result.meta["timings"]) >= {"features", "explain", "reasons", "worklist"}


def test_shap_rows_add_up_to_the_raw_score(result, models) -> None:
    from serving.score import SHAP_PREFIX

    ex = result.explanations
    assert sorted(ex["account_id"]) == sorted(result.worklist["account_id"])
    for name, model in models.items():
        part = ex[ex["model"] == name]
        shap = part[[SHAP_PREFIX + f for f in model.feature_names]].to_numpy()
        np.testing.assert_allclose(shap.sum(axis=1) + part["base_value"], part["raw_score"],
                                   atol=1e-9)
        x = model.matrix(part)
        raw = model.booster.predict(x, raw_score=True)
        np.testing.assert_allclose(part["raw_score"], raw, atol=1e-6)
        contrib = model.booster.predict(x, pred_contrib=True)
        np.testing.assert_allclose(shap, contrib[:, :-1], atol=1e-6)


def test_reasons_carry_the_accounts_own_numbers(result) -> None:
    import json

    wl = result.worklist.set_index("account_id")
    ex = result.explanations.set_index("account_id")
    late = wl[wl["segment"].isin(["delinquent", "late"])]
    assert len(late)
    for acc, row in late.iterrows():
        texts = [row[c] for c in ("reason_1", "reason_2", "reason_3") if isinstance(row[c], str)]
        due = f"{row['past_due_amount']:,.0f} is past due"
        fact = f"oldest open invoice is {int(row['oldest_dpd'])} days past due"
        assert any(due in t and fact in t for t in texts), (acc, texts)
    for acc, row in wl.head(50).iterrows():
        items = json.loads(row["reasons_json"])
        assert items, acc
        for item in items:
            value = ex.loc[acc, item["feature"]]
            if isinstance(item["value"], float | int):
                assert item["value"] == pytest.approx(float(value), rel=1e-6, abs=1e-6)
            shap = ex.loc[acc, "shap_" + item["feature"]]
            assert item["shap"] == pytest.approx(shap, abs=1e-6)
            assert (item["shap"] > 0) == (item["direction"] == "raises") or (
                item["direction"] == "fact"
            )
        risk = [i for i in items if i["direction"] != "lowers"]
        assert [i["text"] for i in risk][:1] == [row["reason_1"]]


def test_open_disputes_get_resolved_first(result, book) -> None:
    from features import build_features

    feats = build_features(book, as_of=AS_OF.date()).set_index("account_id")
    wl = result.worklist.set_index("account_id")
    share = feats["amt_open_disputes"] / feats["past_due_amount"]
    disputed = feats.index[(feats["past_due_amount"] > 0) & (feats["amt_open_disputes"] > 0)
                           & (share >= A.DEFAULT_POLICY.dispute_share)]
    assert len(disputed)
    assert (wl.loc[disputed, "action"] == A.RESOLVE_DISPUTE).all()
    assert (wl.drop(index=disputed)["action"] != A.RESOLVE_DISPUTE).all()


def test_result_matches_the_schemas(result) -> None:
    from serving.schemas import validate_result

    validate_result(result)
    assert set(result.drift["model"]) == {"early_warning", "persistence"}
    assert "__score__" in set(result.drift["feature"])


def test_feature_set_mismatch_is_refused(book, models) -> None:
    import dataclasses

    from features import FEATURE_SET_VERSION
    from serving.score import FeatureSetMismatchError, score_book

    old = {**models, "persistence": dataclasses.replace(models["persistence"],
                                                         feature_set_version="0ld0ld")}
    with pytest.raises(FeatureSetMismatchError) as err:
        score_book(book, as_of=AS_OF.date(), models=old)
    assert "0ld0ld" in str(err.value) and FEATURE_SET_VERSION in str(err.value)


def test_empty_population(book, models) -> None:
    from serving.score import score_book

    res = score_book(book, as_of=pd.Timestamp("2022-06-01").date(), models=models)
    assert res.worklist.empty and res.explanations.empty
    assert res.meta["n_accounts"] == 0
    assert "no accounts with open receivables" in res.meta["message"]
    assert "\n" not in res.meta["message"]


def test_accounts_never_seen_in_training_are_scored(book, models) -> None:
    from features.contract.book import Book
    from serving.score import score_book

    new = pd.DataFrame({
        "invoice_id": ["NEW-INV-1"], "account_id": ["NEW-ACC"],
        "issue_date": [pd.Timestamp("2024-02-10")], "due_date": [pd.Timestamp("2024-03-11")],
        "amount": [5_000.0],
    })
    grown = Book.from_frames(pd.concat([book.invoices, new], ignore_index=True),
                             book.payments, book.accounts, book.disputes)
    res = score_book(grown, as_of=AS_OF.date(), models=models)
    row = res.worklist.set_index("account_id").loc["NEW-ACC"]
    assert row["segment"] == "preventive" and row["model"] == "early_warning"
    assert 0.0 <= row["probability"] <= 1.0
    assert row["priority"] == pytest.approx(row["probability"] * 5_000.0)


# ------------------------------------------------------------------------- runs in the store


def test_score_into_store_writes_a_run_and_fails_cleanly(book, models, tmp_path, monkeypatch):
    from serving import score as S
    from serving.score_run import score_into_store
    from serving.store import WorklistStore

    url = f"sqlite:///{tmp_path / 'worklist.db'}"
    kwargs = dict(as_of=AS_OF.date(), models=models, store_url=url,
                  export_dir=tmp_path / "exports")
    record = score_into_store(book, **kwargs)
    assert record.status == "succeeded" and record.n_scored > 0
    assert {"features", "explain", "write", "total"} <= set(record.timings)
    with WorklistStore(url) as store:
        first = store.read_worklist(as_of=AS_OF.date())
    assert len(first) == record.n_scored and first["rank"].iloc[0] == 1
    assert (tmp_path / "exports").exists()

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure while explaining")

    monkeypatch.setattr(S, "reason_codes", boom)
    with pytest.raises(RuntimeError, match="injected failure"):
        score_into_store(book, **kwargs)
    with WorklistStore(url) as store:
        runs = store.list_runs()
        after = store.read_worklist(as_of=AS_OF.date())
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 1 and "injected failure" in failed["message"].iloc[0]
    pd.testing.assert_frame_equal(after, first)  # the previous worklist is intact

    monkeypatch.undo()
    empty = score_into_store(book, **{**kwargs, "as_of": pd.Timestamp("2022-06-01").date()})
    assert empty.status == "succeeded" and empty.n_scored == 0
    assert empty.message.startswith("no accounts with open receivables as of 2022-06-01")


def test_score_into_store_upgrades_an_older_store(book, models, tmp_path, monkeypatch):
    from serving.score_run import score_into_store
    from serving.store import WorklistStore, current_revision
    from tests.serving.test_store import publish
    from tests.serving.test_store_migrations import NEXT, _code_knowing, _with_second_revision

    url = f"sqlite:///{tmp_path / 'worklist.db'}"
    with WorklistStore(url, explanations_dir=tmp_path / "ex") as store:
        old = publish(store, 10, as_of=AS_OF.date() - pd.Timedelta(days=7))
    _code_knowing(_with_second_revision(tmp_path), monkeypatch)  # a release with NEXT
    record = score_into_store(book, as_of=AS_OF.date(), models=models, store_url=url,
                              export_dir=tmp_path / "exports")
    assert record.status == "succeeded" and current_revision(url) == NEXT
    with WorklistStore(url) as reader:
        assert reader.current_run(as_of=old.as_of) == old


def test_run_scoring_loads_the_champions(book, trained_state, tmp_path) -> None:
    from serving.score_run import run_scoring
    from serving.store import WorklistStore

    url = f"sqlite:///{tmp_path / 'worklist.db'}"
    record = run_scoring(book, as_of=AS_OF.date(), tracking_uri=trained_state.tracking_uri,
                         store_url=url, export_dir=None, model_names=trained_state.names)
    assert record.status == "succeeded"
    assert record.early_warning_version == "1" and record.persistence_version == "1"
    with WorklistStore(url) as store:
        assert len(store.read_worklist(as_of=AS_OF.date(), top=5)) == 5


def test_no_champion_is_ranked_by_the_aging_rule_saying_why(book, trained_state,
                                                            tmp_path) -> None:
    from serving.score_run import run_scoring
    from serving.store import WorklistStore

    # A real MLflow store without these names (issue 12: the rule ranks instead of
    # stopping): every row is the rule's, and the run says why in one line per model.
    record = run_scoring(book, as_of=AS_OF.date(), tracking_uri=trained_state.tracking_uri,
                         store_url=f"sqlite:///{tmp_path / 'w.db'}", export_dir=None,
                         model_names={"early_warning": "nope", "persistence": "nope2"})
    assert record.status == "succeeded"
    assert record.early_warning_version == record.persistence_version == "aging_rule"
    lines = record.meta["rule_lines"]
    assert [x.split(":")[0] for x in lines] == ["early_warning", "persistence"]
    for line in lines:
        assert "no champion (no model trained yet: run `delinq train`)" in line
        assert "ranked by the aging rule" in line and line in record.message
    with WorklistStore(f"sqlite:///{tmp_path / 'w.db'}") as store:
        wl = store.read_worklist(as_of=AS_OF.date())
    assert len(wl) and (wl["scorer"] == "aging_rule").all()
    assert (wl["calibration"] != "validation").all()  # nothing trained: not validation
    ranked = wl.dropna(subset=["probability"])
    assert (ranked["priority"] == ranked["probability"] * ranked["open_balance"]).all()


def test_oldest_open_invoice_facts_agree_with_features(book) -> None:
    from features import build_features

    feats = build_features(book, as_of=AS_OF.date(), facts=True).set_index("account_id")
    inv = book.invoices.set_index("invoice_id")
    due = inv.loc[feats["oldest_invoice_id"], "due_date"].to_numpy()
    dpd = (AS_OF.to_datetime64() - due).astype("timedelta64[D]").astype(float)
    np.testing.assert_array_equal(dpd, feats["oldest_dpd"].to_numpy())
    assert (feats["oldest_invoice_open"] > 0.01).all()
    assert (feats["oldest_invoice_open"] <= feats["largest_open_amount"] + 1e-9).all()
    assert feats["partial_payer"].any() and not feats["partial_payer"].all()


def test_one_cent_short_is_cleared_in_reasons_and_actions(models) -> None:
    """Issue 10: $99.99 paid of $100 clears the invoice for the worklist too: the reason
    names the other open invoice and the account is no partial payer."""
    from features.spec import NO_MATERIALITY
    from serving.score import score_book
    from tests.factories import make_book

    # at 2024-07-01: I1/J1 due 05-15 (47 DPD), I2/J2 due 06-01 (30 DPD), both delinquent
    book = make_book(
        invoices=[("I1", "A", "2024-04-15", "2024-05-15", 100.0),
                  ("I2", "A", "2024-05-01", "2024-06-01", 40.0),
                  ("J1", "B", "2024-04-15", "2024-05-15", 100.0),
                  ("J2", "B", "2024-05-01", "2024-06-01", 40.0)],
        payments=[("I1", "2024-05-20", 99.99), ("J1", "2024-05-20", 99.98)],
    )
    # every delinquent account counts as high risk, so only "partial payer" decides
    # between a payment plan and a personal follow-up
    policy = A.ActionPolicy(high_persistence=0.0)
    # tiny amounts: every cent counts here (the clearing rule, not materiality, is tested)
    res = score_book(book, as_of=pd.Timestamp("2024-07-01").date(), models=models,
                     policy=policy, materiality=NO_MATERIALITY)
    wl = res.worklist.set_index("account_id")
    assert (wl["segment"] == "delinquent").all()

    def reasons(acc: str) -> str:
        return " | ".join(str(wl.loc[acc, c]) for c in ("reason_1", "reason_2", "reason_3"))

    assert wl.loc["A", "oldest_dpd"] == 30 and wl.loc["A", "open_balance"] == 40.0
    assert "(I2, $40 open)" in reasons("A") and "I1" not in reasons("A")
    assert wl.loc["A", "action"] == A.PERSONAL_FOLLOW_UP
    assert wl.loc["B", "oldest_dpd"] == 47
    assert "(J1, $0 open)" in reasons("B")
    assert wl.loc["B", "action"] == A.PAYMENT_PLAN


def test_a_shared_snapshot_scores_exactly_as_building_the_features(book, models,
                                                                   result) -> None:
    """Issue 20: the nightly builds the features once (``features.pit.snapshot``) and hands
    them to the run checks, the KPIs and the scoring: the same worklist, explanations and
    drift, to the bit, as when the scoring builds them itself; a snapshot of another night
    is refused."""
    from features.pit.snapshot import snapshot
    from features.spec import NO_MATERIALITY
    from serving.score import score_book

    shared = snapshot(book, as_of=AS_OF.date())
    again = score_book(book, as_of=AS_OF.date(), models=models, table_budget_mb=64,
                       features=shared.features)
    pd.testing.assert_frame_equal(again.worklist, result.worklist)
    pd.testing.assert_frame_equal(again.explanations, result.explanations)
    pd.testing.assert_frame_equal(again.drift, result.drift)
    with pytest.raises(ValueError, match="the snapshot is of"):
        shared.check(as_of=AS_OF.date() + pd.Timedelta(days=1), materiality=shared.materiality)
    with pytest.raises(ValueError, match="the snapshot is of"):
        shared.check(as_of=AS_OF.date(), materiality=NO_MATERIALITY)


def test_the_books_reads_taken_first_score_without_the_book(book, models, result) -> None:
    """Issue 20: what the scoring reads of the book (``book_reads``: features with the
    loop's, the loop facts) taken first, the book-less scoring gives the same worklist,
    explanations and drift to the bit (the nightly frees its Book before the scoring);
    without them, a scoring without a book is refused."""
    from features.pit.snapshot import snapshot
    from serving.score import book_reads, score_book

    feats, loop = book_reads(book, as_of=AS_OF.date(), models=models,
                             features=snapshot(book, as_of=AS_OF.date()).features)
    assert len(loop) == len(feats) and loop.index.equals(feats.index)
    bookless = score_book(None, as_of=AS_OF.date(), models=models, table_budget_mb=64,
                          features=feats, loop=loop, history_start=book.first_date)
    pd.testing.assert_frame_equal(bookless.worklist, result.worklist)
    pd.testing.assert_frame_equal(bookless.explanations, result.explanations)
    pd.testing.assert_frame_equal(bookless.drift, result.drift)
    with pytest.raises(ValueError, match="needs loop"):
        score_book(None, as_of=AS_OF.date(), models=models, features=feats,
                   history_start=book.first_date)
    with pytest.raises(ValueError, match="needs history_start"):
        score_book(None, as_of=AS_OF.date(), models=models, features=feats, loop=loop)
