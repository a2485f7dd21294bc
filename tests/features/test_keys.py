"""The id matchers of ``features.keys``: Arrow hash lookups against a value set, and reading
another column at the rows found (``index_in``, ``is_in``, ``values_at``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.keys import index_in, is_in, match_ids, values_at


def test_index_in_and_is_in_agree_with_match_ids_on_ids_of_every_form() -> None:
    reference = pd.Series(["I3", "I1", "I2", "I1"], dtype="str")  # a repeat: first wins
    query = pd.Series(["I1", "I9", "I2", "I3"], dtype="category")  # codes are decoded
    assert index_in(query, reference).tolist() == [1, -1, 2, 0]
    assert index_in(query, reference).tolist() == match_ids(query, reference).tolist()
    assert is_in(query, reference).tolist() == [True, False, True, True]
    # A missing query id is found nowhere.
    assert index_in(pd.Series(["I2", None], dtype="str"), reference).tolist() == [2, -1]
    assert is_in(pd.Series([None, "I3"], dtype="str"), reference).tolist() == [False, True]


def test_values_at_reads_the_rows_found_and_leaves_the_others_missing() -> None:
    accounts = pd.Series(["A1", "A2", "A3"], dtype="str")
    out = values_at(accounts, np.array([2, -1, 0]), pd.Index([10, 11, 12]), "account_id")
    assert out.dtype == "str" and out.name == "account_id"
    assert out.index.tolist() == [10, 11, 12]
    assert out.tolist()[0] == "A3" and pd.isna(out[11]) and out[12] == "A1"
