"""The reason-code table: one sentence template per model feature (see ``serving.reasons``).

Fields: ``{v}`` is the feature's own value, other names are feature (or detail) columns;
the format after the colon is ``int``, ``abs``, ``money``, ``pct``, ``dec`` or ``str``.
Every sentence states the account's own number with its unit and window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The delinquency fact always stated for delinquent and late accounts.
FACT_FEATURE = "oldest_dpd"

Predicate = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Template:
    """A reason sentence for one feature.

    ``text``: the default sentence. ``variants``: ``(predicate on the value, sentence)``
    pairs tried first, in order. ``if_missing``: sentence when the value is missing (None:
    skip this feature and use the next reason). ``detail``: appended when every field it
    names is present (e.g. the oldest invoice's id and amount).
    """

    text: str
    variants: tuple[tuple[Predicate, str], ...] = ()
    if_missing: str | None = None
    detail: str | None = None


def _neg(v: np.ndarray) -> np.ndarray:
    return v < 0


def _zero(v: np.ndarray) -> np.ndarray:
    return v == 0


def _le0(v: np.ndarray) -> np.ndarray:
    return v <= 0


def _one(v: np.ndarray) -> np.ndarray:
    return np.rint(v) == 1


T = Template

TEMPLATES: dict[str, Template] = {}
