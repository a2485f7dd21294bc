"""The last step of validation's to-book conversion (``features.contract.canonical``) gives
the Book's dtypes exactly as Arrow's conversion did: dates (with nulls, before 1970) and
categorical codes (``features.row_order.lexical_codes``: nulls, unused and 8-bit codes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from features.contract.book import DATE_DTYPE
from features.contract.canonical import _dates
from features.row_order import lexical_codes


def _through_arrow(series: pl.Series) -> pd.Series:
    arrow = series.to_frame().to_arrow().column(0).cast(pa.timestamp("s"))
    return pa.table({series.name: arrow}).to_pandas()[series.name]


def test_dates_are_arrows_midnight_seconds_with_nat_for_nulls() -> None:
    for days in ([0, 19_000, -5_000, None, -1], [1, 2, 3], [None, None], []):
        series = pl.Series("d", days, dtype=pl.Int32).cast(pl.Date)
        got = _dates(series)
        assert got.dtype == DATE_DTYPE and got.name == "d"
        pd.testing.assert_series_equal(got, _through_arrow(series))
        assert got.isna().tolist() == [d is None for d in days]


def test_lexical_codes_rank_the_text_of_the_values_present() -> None:
    text = ["b", None, "a", "b", "é", "A", None, "a"]
    for series in (pl.Series("c", text).cast(pl.Categorical),
                   pl.Series("c", text).cast(pl.Enum(["z", "é", "b", "a", "A", "unused"]))):
        codes, names = lexical_codes(series)
        assert names.to_list() == ["A", "a", "b", "é"]  # byte order, present values only
        assert codes.dtype == np.int32
        assert [names[int(c)] if c >= 0 else None for c in codes] == text
    codes, names = lexical_codes(pl.Series("e", [None, None], dtype=pl.String).cast(
        pl.Categorical))
    assert codes.tolist() == [-1, -1] and names.to_list() == []
