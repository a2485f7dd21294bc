"""Compile the numba kernels into their on-disk cache once, at install time.

``make install`` runs ``python -m pipelines.warm`` after installing, the way pip
byte-compiles modules: the point-in-time feature kernels (``features.pit``), the credit
rules, validation's id lookups and row order (``features.keys``, ``features.row_order``)
and the exact TreeSHAP kernels (``models.treeshap``) are compiled with ``cache=True``, so
the first nightly, training, notebook or test run in a fresh checkout loads them instead of
compiling them (tens of seconds of CPU on 2 cores).

It runs the library on a tiny synthetic book (features and labels at a few weekly dates,
a quick training of both models, exact explanations and the scoring) in memory, then the
nightly's validation and encoding of that book written as Parquet and CSV files in a
temporary folder (removed): nothing is kept but the kernels' caches. Running it again
with a warm cache takes a few seconds. A failure here is printed and ignored: the kernels
then compile on first use, as they would without it.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import pandas as pd

    from features.contract.book import Book

#: What the nightly's score step imports that its ingest does not: MLflow, LightGBM and
#: scikit-learn through these (at 1M accounts the score step spent 4.9 s importing,
#: issue 20). :func:`import_on_thread` imports them while the files are read.
SCORING_MODULES: Final = (
    "models.registry", "models.live", "serving.rule_scoring", "serving.score_run",
    "serving.partitioned", "serving.store", "features.pit.snapshot", "features.pit.kpis",
    "pipelines.steps_shadow", "pipelines.steps_partitioned",
)


def import_on_thread(modules: tuple[str, ...] = SCORING_MODULES) -> threading.Thread:
    """Import ``modules`` on a daemon thread (started; returned): the nightly's ingest
    (``steps.ingest(background=True)``) reads and validates on native code that releases
    the GIL, so the score step's imports run beside it on the second core instead of
    after it. Safe because the project's modules import each other without cycles
    (``../shared/tools/import_cycles.py`` finds none): a module both threads want is
    imported once, the other waiting on its import lock. A module that fails to import
    is left alone here: the score step's own import raises its error where it belongs."""

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - raised again by the step's import
                continue

    thread = threading.Thread(target=run, name="delinq-imports", daemon=True)
    thread.start()
    return thread


def warm() -> float:
    """Compile the kernels (see the module docstring); seconds taken."""
    import pandas as pd

    from features.contract.book import Book
    from features.contract.validation import validate_tables
    from features.pit import build_features
    from features.pit.promises import promise_state
    from features.pit.snapshot import prepare_book
    from features.pit.training_set import build_training_set
    from features.spec import MODEL_OF_SEGMENT
    from features.synthetic import generate_book
    from models.train import TrainConfig, TrainingResult, train_models
    from serving.score import score_book

    t0 = time.perf_counter()
    book = generate_book(300, seed=7, start="2023-01-01", end="2023-12-31")
    # validation's id lookups (polars string views) and, on the tables in reverse, the
    # unsorted paths: hash lookups and the canonical sort (``features.row_order``)
    tables = {name: frame.astype(str) for name, frame in book.tables().items()}
    validate_tables(tables, max_bad_share=1.0)
    validate_tables({name: frame.iloc[::-1] for name, frame in tables.items()},
                    max_bad_share=1.0)
    end = pd.Timestamp("2023-12-31")
    dates = list(pd.date_range("2023-04-03", end - pd.Timedelta(days=7), freq="7D"))
    training_set = build_training_set(book, as_of_dates=dates, data_end=end)
    quick = TrainConfig(n_estimators=20, min_child_samples=10, val_weeks=6, test_weeks=6,
                        n_jobs=1, early_stopping_rounds=5)
    trained = train_models(training_set, config=quick)
    models = {k: r.model for k, r in trained.items() if isinstance(r, TrainingResult)}
    if len(models) == len(trained):
        score_book(book, as_of=end, models=models)  # features, TreeSHAP, reasons
    else:  # a population without a model: its explanations still compile the kernels
        for kind, model in models.items():
            model.explain(training_set[training_set["segment"].map(
                MODEL_OF_SEGMENT) == kind].head(200))
    # the promise states' id matching (the book above has no promises) and the openness
    # rule's applications of a credit note (nor credit notes)
    looped = generate_book(30, seed=7, start="2023-01-01", end="2023-12-31", loop=True)
    promise_state(looped, as_of=end)
    # and the nightly's: the payments' invoice rows of its encoding (``pay_invoices``)
    promise_state(looped, as_of=end, pay_invoices=prepare_book(looped).pay_invoices)
    day = pd.Timestamp("2023-01-01")
    credit = pd.DataFrame({"invoice_id": ["I1", "C1"], "account_id": ["A", "A"],
                           "issue_date": [day, day], "due_date": [day, day],
                           "amount": [100.0, -30.0]})
    build_features(Book.from_frames(credit), as_of=end.date())
    _nightly_types(looped, end)
    return time.perf_counter() - t0


def _nightly_types(book: Book, end: pd.Timestamp) -> None:
    """The nightly's own path on ``book`` written as files: a Book validated from Parquet
    and from CSV holds its ids in other array types than a generated one (polars string
    views, large strings), and each type is a kernel specialization of its own. Without
    this, the first nightly after an install compiled the id lookups' and the encoding's
    kernels for them (~30 s at any book size, issue 20)."""
    import tempfile
    from pathlib import Path

    from features.contract.io import write_book
    from features.contract.validation import validate_folder
    from features.pit.kpis import credit_sales
    from features.pit.snapshot import snapshot

    with tempfile.TemporaryDirectory(prefix="delinq-warm-") as tmp:
        for fmt in ("parquet", "csv"):
            folder = Path(tmp) / fmt
            write_book(book, folder, fmt=fmt)
            validated = validate_folder(folder, quarantine_dir=Path(tmp) / f"q-{fmt}").book
            snapshot(validated, as_of=end.date())
            # the KPIs' sums over such a Book's dates (read-only arrays: a type of their own)
            credit_sales(validated, start=validated.first_date.date(), end=end.date())


def main() -> int:
    try:
        seconds = warm()
    except Exception as exc:  # noqa: BLE001 - an optimisation must never fail an install
        print(f"numba kernels not pre-compiled ({exc}); they compile on first use")
        return 0
    print(f"numba kernels compiled into their cache in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
