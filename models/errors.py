"""The models layer's user-fixable errors, in a module that imports nothing heavy.

Defined here (and re-exported where they are raised: :mod:`models.mlflow_store`,
:mod:`models.registry`, :mod:`models.train`) so that code which only needs to *catch*
them (the CLI's one-line error reporting, :func:`pipelines.errors.user_errors`) does not
import MLflow, LightGBM, scikit-learn and matplotlib for it: that import costs a few
seconds of CPU on every CLI command, also the read-only ones (``delinq worklist``).
"""

from __future__ import annotations


class NoChampionError(LookupError):
    """The registered model has no version under the requested alias (or, for scoring, no
    champion that passed the quality gate)."""


class UngatedChampionError(NoChampionError):
    """The champion has no recorded gate pass (promoted before the gate existed): it is
    not used for scoring."""


class SplitError(ValueError):
    """The training set cannot be split or fitted under this configuration (a period is
    empty or too thin, or the book too short); the message is one line naming the setting
    to change."""
