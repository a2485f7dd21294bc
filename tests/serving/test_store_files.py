"""The explanation file's layouts: the lists layout gives the scorer's wide table back
exactly (types, nulls vs NaNs, text and date features, metadata), whole or a few accounts;
a file written before it (wide, no layout key) reads as it always did."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving import store_files as sf


def _scored_like(n: int = 11) -> pd.DataFrame:
    """A wide explanation frame as :func:`serving.score` builds it: two models whose
    features differ (the other model's columns null), int/float/bool/text/date values."""
    rng = np.random.default_rng(5)
    first = np.arange(n) < n // 2
    frame = pd.DataFrame({
        "account_id": [f"A{i:03d}" for i in range(n)],
        "model": np.where(first, "early_warning", "persistence"),
        "model_version": np.where(first, "3", "7"),
        "base_value": -1.25,
        "raw_score": rng.normal(size=n),
        "invoices": pd.array([i if i % 4 else None for i in range(n)], dtype="Int64"),
        "rate": [0.25 * i for i in range(n)],  # NaN and null set in Arrow (see wide())
        "small": rng.normal(size=n).astype("float32"),
        "disputed": pd.array([bool(i % 2) if i != 5 else None for i in range(n)],
                             dtype="boolean"),
        "region": pd.Categorical(["emea", "apac"] * (n // 2) + ["emea"] * (n % 2)),
        "opened": [date(2024, 1, 1 + i) for i in range(n)],
    })
    for name in ("invoices", "rate", "small", "disputed", "region", "opened"):
        shap = rng.normal(size=n)
        frame[f"shap_{name}"] = np.where(first | (name != "small"), shap, np.nan)
    frame.loc[4, "shap_rate"] = None
    return frame


def _same(got: pa.Table, want: pa.Table) -> bool:
    """Same schema (metadata too) and values, a NaN equal to a NaN (``Table.equals`` says
    NaN != NaN), a null only to a null."""
    def plain(t: pa.Table) -> dict[str, list]:
        return {k: ["NaN" if isinstance(v, float) and math.isnan(v) else v for v in col]
                for k, col in t.to_pydict().items()}
    return got.schema.equals(want.schema, check_metadata=True) and plain(got) == plain(want)


@pytest.fixture
def wide() -> pa.Table:
    frame = _scored_like()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # from_pandas makes every NaN a null: the scorer's Arrow may hold both.
    rate = pa.array([math.nan if i == 2 else (None if i == 3 else 0.25 * i)
                     for i in range(len(frame))], pa.float64(), from_pandas=False)
    table = table.set_column(table.schema.get_field_index("rate"), "rate", rate)
    return table.replace_schema_metadata({**table.schema.metadata, b"delinq.run_id": b"R1"})


def test_the_lists_layout_gives_the_wide_table_back(
    wide: pa.Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several row groups and batches, one batch ending mid-group.
    monkeypatch.setattr(sf, "EXPLANATION_ROWS_PER_GROUP", 2)
    monkeypatch.setattr(sf, "_LISTS_BATCH_ROWS", 3)
    path = tmp_path / "explanations.parquet"
    sf.write_explanations_parquet(wide, path)
    stored = pq.ParquetFile(path)
    assert stored.schema_arrow.metadata[sf.FORMAT_KEY] == sf.EXPLANATIONS_FORMAT.encode()
    assert stored.num_row_groups == 7  # batches of 3 rows, in groups of 2, 1
    # Text and date features keep their own columns; numbers go in the two lists.
    assert stored.schema_arrow.names == ["account_id", "model", "model_version",
                                         "base_value", "raw_score", "region", "opened",
                                         sf.VALUES_COLUMN, sf.SHAP_COLUMN]
    back = sf.read_parquet_accounts(path, None)
    assert _same(back, wide)
    pd.testing.assert_frame_equal(back.to_pandas(), wide.to_pandas())
    # NaN and null stay apart (the API shows both as null, a reader of the table may not).
    assert back.column("rate")[2].as_py() != back.column("rate")[2].as_py()  # NaN
    assert back.column("rate")[3].as_py() is None
    some = sf.read_parquet_accounts(path, ["A009", "A000", "A004", "missing"])
    assert _same(some, wide.take([0, 4, 9]))
    assert _same(sf.read_parquet_accounts(path, ["missing"]), wide.schema.empty_table())
    assert sf.parquet_columns(path) == wide.column_names


def test_a_wide_file_of_an_older_run_still_reads(wide: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "explanations.parquet"
    sf._write(wide, path, 4)  # how runs were written before the lists layout
    assert sf.FORMAT_KEY not in pq.read_schema(path).metadata
    # As Parquet always gave it (dictionary text comes back as string, not large_string).
    pd.testing.assert_frame_equal(sf.read_parquet_accounts(path, None).to_pandas(),
                                  wide.to_pandas())
    pd.testing.assert_frame_equal(
        sf.read_parquet_accounts(path, ["A007", "A001"]).to_pandas(),
        wide.take([1, 7]).to_pandas())
    assert sf.parquet_columns(path) == wide.column_names


def test_an_unknown_layout_is_refused(wide: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "explanations.parquet"
    meta = {**wide.schema.metadata, sf.FORMAT_KEY: b"parquet-lists-v9"}
    sf._write(wide.replace_schema_metadata(meta), path, 4)
    with pytest.raises(ValueError, match="parquet-lists-v9"):
        sf.read_parquet_accounts(path, ["A001"])


def test_the_export_stays_wide(wide: pa.Table, tmp_path: Path) -> None:
    staged: list[Path] = []
    path, size = sf.write_run_files(tmp_path / "run", tmp_path / "exports", "R9",
                                    date(2025, 1, 6), wide.select(["account_id"]), wide,
                                    staged)
    assert path is not None and size == path.stat().st_size
    export = next(p for p in staged if p.name.endswith("explanations.parquet"))
    table = pq.read_table(export)
    assert sf.FORMAT_KEY not in table.schema.metadata
    assert table.schema.metadata[b"delinq.run_id"] == b"R9"
    pd.testing.assert_frame_equal(table.to_pandas(), wide.to_pandas())


def test_lists_without_nulls_give_the_same_table(wide: pa.Table, tmp_path: Path) -> None:
    # No null item: the lists are cut by a reshape instead of a take per feature.
    def full(name: str) -> pa.ChunkedArray | pa.Array:
        column = wide.column(name)
        if name == "rate":
            return pa.array(np.linspace(0, 1, wide.num_rows))
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            return column
        return column.fill_null(False if pa.types.is_boolean(column.type) else 0)

    filled = pa.table({name: full(name) for name in wide.column_names
                       if name not in ("region", "opened")})
    path = tmp_path / "explanations.parquet"
    sf.write_explanations_parquet(filled, path)
    assert _same(sf.read_parquet_accounts(path, None), filled)
    assert _same(sf.read_parquet_accounts(path, ["A003", "A006"]), filled.take([3, 6]))


@pytest.mark.parametrize("layout", ["lists", "wide"])
def test_rows_as_dicts_are_the_wide_tables_rows(wide: pa.Table, tmp_path: Path,
                                                layout: str) -> None:
    path = tmp_path / "explanations.parquet"
    if layout == "lists":
        sf.write_explanations_parquet(wide, path)
    else:
        sf._write(wide, path, 4)
    wanted = ["A010", "A002", "A003", "A004", "A005", "missing"]
    rows = sf.read_explanation_rows(path, wanted)
    want = sf.read_parquet_accounts(path, wanted).to_pylist()
    assert [r["account_id"] for r in rows] == ["A002", "A003", "A004", "A005", "A010"]
    plain = [{k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
             for r in (*rows, *want)]
    assert plain[:5] == plain[5:]
    assert [type(v) for v in rows[0].values()] == [type(v) for v in want[0].values()]
    assert isinstance(rows[1]["invoices"], int) and isinstance(rows[0]["disputed"], bool)
    assert sf.read_explanation_rows(path, ["missing"]) == []


def test_a_run_without_shap_values_has_no_list_columns_and_reads_back(
    wide: pa.Table, tmp_path: Path
) -> None:
    # A run ranked by the rule: reasons, no SHAP value (Arrow has no fixed-size list of
    # size 0, so the file must leave such a column out rather than fail to write).
    rule = wide.drop_columns([n for n in wide.column_names
                              if n.startswith("shap_") or n in ("invoices", "rate")])
    path = tmp_path / "explanations.parquet"
    sf.write_explanations_parquet(rule, path)
    stored = pq.ParquetFile(path)
    assert sf.VALUES_COLUMN not in stored.schema_arrow.names
    assert sf.SHAP_COLUMN not in stored.schema_arrow.names
    assert _same(sf.read_parquet_accounts(path, None), rule)
    assert sf.read_explanation_rows(path, ["A002"]) == rule.slice(2, 1).to_pylist()
