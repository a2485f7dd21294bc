"""The one model type: scores, scikit-learn layout, exact explanations, files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.model import FILES, DelinqModel
from tests.factories import TrainedState


@pytest.fixture(scope="module")
def model(trained_state: TrainedState) -> DelinqModel:
    return trained_state.results["persistence"].model


@pytest.fixture(scope="module")
def frame(trained_state: TrainedState) -> pd.DataFrame:
    return trained_state.results["persistence"].test


def test_risk_is_the_calibrated_raw_score_in_both_layouts(model, frame) -> None:
    raw = model.raw_score(frame)
    risk = model.risk(frame)
    assert raw.shape == risk.shape == (len(frame),)
    np.testing.assert_array_equal(risk, model.calibrator.predict(raw))
    assert ((risk >= 0) & (risk <= 1)).all()
    proba = model.predict_proba(frame)
    assert proba.shape == (len(frame), 2)
    np.testing.assert_array_equal(proba[:, 1], risk)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    # Calibration is monotone: the probability orders rows as the raw score does.
    order = np.argsort(raw, kind="mergesort")
    assert (np.diff(risk[order]) >= -1e-12).all()


def test_explanations_are_exact_and_add_up_to_the_raw_score(model, frame) -> None:
    before = frame.copy()
    ex = model.explain(frame, table_budget_mb=64)
    pd.testing.assert_frame_equal(frame, before)  # the input is never mutated
    assert ex.values.shape == (len(frame), len(model.feature_names))
    assert list(ex.features.columns) == model.feature_names
    assert ex.features.index.equals(frame.index)
    np.testing.assert_allclose(ex.raw_score, model.raw_score(frame), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ex.values.sum(axis=1) + ex.base_value, ex.raw_score, atol=1e-12)
    contrib = model.booster.predict(ex.features, pred_contrib=True)
    np.testing.assert_allclose(ex.values, contrib[:, :-1], rtol=0, atol=1e-9)


def test_save_then_load_is_the_same_model(model, frame, tmp_path: Path) -> None:
    paths = model.save(tmp_path / "m")
    assert {Path(p).name for p in paths.values()} == set(FILES.values())
    loaded = DelinqModel.load(tmp_path / "m", version="7")
    assert loaded.version == "7" and model.version is None
    for f in ("kind", "feature_names", "categories", "feature_set_version", "data_window"):
        assert getattr(loaded, f) == getattr(model, f), f
    assert loaded.reference_profile == json.loads(json.dumps(model.reference_profile))
    assert loaded.calibrator.to_dict() == model.calibrator.to_dict()
    np.testing.assert_array_equal(loaded.raw_score(frame), model.raw_score(frame))
    np.testing.assert_array_equal(loaded.risk(frame), model.risk(frame))


def test_folders_written_before_the_kind_field_still_load(model, frame, tmp_path) -> None:
    model.save(tmp_path)
    meta = json.loads((tmp_path / FILES["meta"]).read_text())
    meta["model"] = meta.pop("kind")  # the key the previous release wrote
    (tmp_path / FILES["meta"]).write_text(json.dumps(meta))
    loaded = DelinqModel.load(tmp_path)
    assert loaded.kind == model.kind
    np.testing.assert_array_equal(loaded.risk(frame), model.risk(frame))


def test_unknown_kind_is_refused(model) -> None:
    with pytest.raises(ValueError, match="unknown model kind 'nope'"):
        dataclasses.replace(model, kind="nope")


def test_the_package_face_resolves_every_name() -> None:
    import models

    for name in models.__all__:
        assert getattr(models, name).__module__.startswith("models."), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        models.nope  # noqa: B018
    assert sorted(models.__all__) == sorted(models._EXPORTS)


def test_feature_matrix_maps_each_categorical_value_by_its_text():
    """Training levels are matched by ``str`` of each value, whatever the column's dtype
    (categorical, Arrow strings, objects, numbers); missing and unseen values -> NaN."""
    import numpy as np
    import pandas as pd

    from models.model import feature_matrix

    frame = pd.DataFrame({
        "cat": pd.Categorical(["x", "q", None, "y"]),
        "text": pd.Series(["x", "y", None, "q"], dtype="str"),
        "mixed": pd.Series(["x", 1, 1.0, True], dtype=object),
        "number": [1.0, np.nan, 2.0, 1.0],
    }).set_axis([7, 8, 9, 10])
    levels = ["1", "1.0", "2.0", "True", "x", "y"]
    x = feature_matrix(frame, list(frame.columns), dict.fromkeys(frame.columns, levels))
    as_text = {c: [None if pd.isna(v) else v for v in x[c].astype(object)] for c in x}
    assert as_text == {"cat": ["x", None, None, "y"], "text": ["x", "y", None, None],
                       "mixed": ["x", "1", "1.0", "True"],
                       "number": ["1.0", None, "2.0", "1.0"]}
    assert list(x.index) == [7, 8, 9, 10]
    assert all(list(x[c].cat.categories) == levels for c in x)
