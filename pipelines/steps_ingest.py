"""The ingest steps of :mod:`pipelines.steps`: generate a synthetic book, validate a data
folder, stage the validated book as Parquet (:func:`ingest`) and read it back
(:func:`read_book`) for the later steps."""

from __future__ import annotations

import shutil
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.progress import progress
from pipelines.run_checks import plausibility
from pipelines.settings import Settings
from pipelines.steps_base import quarantine_dir, staging_dir
from pipelines.summaries import GenerateSummary, IngestSummary, ValidationSummary

if TYPE_CHECKING:
    from features.contract.book import Book


# --------------------------------------------------------------------------- book I/O


def read_book(path: Path) -> Book:
    """The Book staged by :func:`ingest` (already validated: typed, not re-checked)."""
    from features.contract.book import Book
    from features.contract.io import read_folder

    tables = {t: frame for t, (_, frame) in read_folder(path).items()}
    return Book.from_frames(**tables)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Swap ``tmp`` in as ``target``: a crash leaves either the old or the new folder."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def generate(*, settings: Settings, out: Path, accounts: int, start: date | str = "2023-01-01",
             end: date | str = "2024-12-31", error_rate: float = 0.0,
             fmt: str = "parquet", independent_lateness: bool = False,
             loop: bool = False) -> GenerateSummary:
    """Write a synthetic book of ``accounts`` accounts (issue dates from ``start``, events
    until ``end``) to the folder ``out``, seeded by ``settings.seed``
    (``independent_lateness``, ``loop``: see ``features.synthetic.generate_book``)."""
    from features.synthetic import write_book_folder

    progress(f"generating a synthetic book: {accounts:,} accounts, {start} to {end}")
    t0 = time.perf_counter()
    written = write_book_folder(accounts, out, seed=settings.seed, start=start, end=end,
                                error_rate=error_rate, fmt=fmt,
                                independent_lateness=independent_lateness, loop=loop)
    rows = {k: int(v) for k, v in written.get("rows", {}).items()}
    seconds = time.perf_counter() - t0
    progress(f"  {rows.get('invoices', 0):,} invoices written to {out} ({seconds:.1f} s)")
    return GenerateSummary(out=Path(out), rows=rows, injected=written.get("injected", {}),
                           seconds=float(written.get("seconds", seconds)))


def _validate(settings: Settings, source: Path, quarantine: Path | None,
              accept_anomalies: bool = False) -> tuple[Any, dict]:
    from features.contract.validation import validate_folder

    progress(f"validating {source}")
    t0 = time.perf_counter()
    qdir = Path(quarantine) if quarantine is not None else quarantine_dir(settings, source)
    result = validate_folder(source, max_bad_share=settings.max_bad_share, quarantine_dir=qdir,
                             plausibility=plausibility(settings),
                             accept_anomalies=accept_anomalies)
    book = result.book
    tables = tuple(
        {k: (str(v) if k == "table" else int(v)) for k, v in rec.items()}
        for rec in result.summary.to_dict("records")
    )
    facts = {
        "source": Path(source),
        "quarantine": qdir,
        "tables": tables,
        "report": result.render(),
        "quarantined": sum(r["quarantined"] for r in tables),
        "accounts": int(book.accounts.shape[0]),
        "invoices": int(len(book.invoices)),
        "first_date": book.first_date.date(),
        "last_date": book.last_date.date(),
        "seconds": time.perf_counter() - t0,
    }
    return book, facts


def validate(*, settings: Settings, source: Path, quarantine: Path | None = None,
             accept_anomalies: bool = False) -> ValidationSummary:
    """Validate the data folder ``source``: bad rows to ``quarantine`` (default
    :func:`quarantine_dir`), nothing staged. ``DataContractError`` if it cannot be used
    (an anomaly too, unless ``accept_anomalies``)."""
    _, facts = _validate(settings, source, quarantine, accept_anomalies)
    return ValidationSummary(**facts)


def ingest(*, settings: Settings, source: Path,
           accept_anomalies: bool = False) -> IngestSummary:
    """Validate the data folder ``source`` (bad rows to :func:`quarantine_dir`) and stage
    the kept rows as Parquet at :func:`staging_dir` for the later steps. A plausibility
    anomaly stops here (nothing staged) unless ``accept_anomalies``."""
    from features.contract.io import write_book

    t0 = time.perf_counter()
    book, facts = _validate(settings, source, None, accept_anomalies)
    target = staging_dir(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_book(book, tmp)
    _replace_dir(tmp, target)
    facts["seconds"] = time.perf_counter() - t0
    progress(
        f"  kept {facts['invoices']:,} invoices of {facts['accounts']:,} accounts, "
        f"quarantined {facts['quarantined']:,} rows ({facts['seconds']:.1f} s)"
    )
    return IngestSummary(**facts, staged=target)
