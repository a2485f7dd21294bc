"""Adapters: real export formats -> raw contract tables (DESIGN sections 3 and 12).

Each adapter module has ``convert(src: Path, **options) -> dict[str, DataFrame]`` returning
the contract tables (``invoices`` and, where the source has them, ``payments``,
``accounts``, ``disputes``) as *raw* tables: ids and text as strings, dates as ISO
``YYYY-MM-DD`` strings, amounts as decimal strings. They are meant to pass
:func:`features.contract.validation.validate_tables` untouched; a value an adapter cannot make sense
of is passed through as read, so validation quarantines it instead of it being lost.
Extra keys are side tables (``targets``, ``import_report``), written by
:func:`features.contract.io.write_tables` as ``_<key>.<fmt>`` and never read as data.

No adapter emits a protected attribute (sex, age, marital status, education, ...:
``features.spec.PROTECTED``), not even as an extra column: :func:`convert` checks.

Exports that carry a clear/settled date on the invoice row become one payment of the full
amount on that date per cleared invoice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = ["FORMATS", "convert", "iso_dates", "money"]

#: Format name (as in ``delinq import --format``) -> adapter module under this package.
FORMATS: Final = {"highradius": "highradius", "ibm_ar": "ibm_ar", "taiwan_credit": "taiwan"}


def convert(fmt: str, src: str | Path, **options: Any) -> dict[str, pd.DataFrame]:
    """Convert the export ``src`` of format ``fmt`` (see :data:`FORMATS`) to contract tables.

    ``options`` go to the adapter's own ``convert`` (see each module).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown import format {fmt!r}; choose one of {sorted(FORMATS)}")
    import importlib

    from features.spec import check_not_protected

    module = importlib.import_module(f"features.adapters.{FORMATS[fmt]}")
    fn: Callable[..., dict[str, pd.DataFrame]] = module.convert
    tables = fn(Path(src), **options)
    for name, frame in tables.items():  # not even as an extra column a model might pick up
        check_not_protected(frame.columns, where=f"adapter {fmt!r}, table {name!r}")
    return tables


def iso_dates(days: pd.Series | np.ndarray) -> pd.Series:
    """``datetime64`` values as ``YYYY-MM-DD`` strings (missing -> empty string)."""
    series = pd.Series(days)
    text = series.dt.strftime("%Y-%m-%d")
    return text.where(series.notna(), "").astype("str")


def money(amounts: pd.Series | np.ndarray) -> pd.Series:
    """Amounts as decimal strings rounded to the cent (missing -> empty string)."""
    series = pd.Series(amounts, dtype="float64")
    text = series.map(lambda x: f"{x:.2f}", na_action="ignore")
    return text.where(series.notna(), "").astype("str")
