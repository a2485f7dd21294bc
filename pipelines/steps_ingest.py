"""The ingest steps of :mod:`pipelines.steps`: generate a synthetic book, validate a data
folder, stage the validated book as Parquet (:func:`ingest`) and read it back
(:func:`read_book`) for the later steps.

The staged files are the hand-off between steps (Prefect tasks pass their path, and a
later step may run in another process). Within one process the Book that :func:`ingest`
just validated is handed over in memory instead: :func:`read_book` returns it while the
staged folder is still exactly the one this process wrote (same files, sizes and
modification times), and reads the files otherwise. At 1M accounts this saves reading
~8 GB back (~30 s) in the nightly and ``delinq train``.

``ingest(background=True)`` (the nightly, whose score step follows in this process) writes
the staged files on a thread instead (pyarrow's Parquet writer releases the GIL, so it runs
on the second core beside the scoring): as before, the files go to a temporary folder
swapped in whole when written; and the score step's modules are imported on another
thread meanwhile (``pipelines.warm.import_on_thread``). Until then :func:`read_book` in
this process returns the Book in memory (the files will hold exactly it); reading the
files, and publishing a run scored from it (:func:`wait_staged`, called by the score
step), waits for the write, and a failed write fails them with :class:`StagingError`
naming it.

The Book in memory lacks the columns only the staged files keep
(``features.contract.book.STAGED_ONLY``: payments' ``payment_id``, invoices'
``terms_days``) from the start: the write holds the last reference to them, and writes
their tables first, each table released once written (at 1M accounts ~1.2 GB not held
through the scoring, the payment ids freed after two tables' writes instead of six)."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pipelines.progress import progress
from pipelines.run_checks import plausibility
from pipelines.settings import Settings
from pipelines.steps_base import quarantine_dir, staging_dir
from pipelines.summaries import GenerateSummary, IngestSummary, ValidationSummary

if TYPE_CHECKING:
    from features.contract.book import Book


# --------------------------------------------------------------------------- book I/O


class StagingError(RuntimeError):
    """The validated book could not be written to the staging folder (a background write
    of :func:`ingest`, reported where it is waited for: :func:`wait_staged`)."""


#: The name of the thread writing a staged book (``bench.nightly`` looks for it).
STAGING_THREAD: Final = "stage-book"


class _StagingWrite:
    """The write of one validated Book to its staging folder, on a thread of its own:
    written under a temporary name, then swapped in whole (:func:`_replace_dir`)."""

    def __init__(self, book: Book, target: Path) -> None:
        self.target = target
        self.error: BaseException | None = None
        #: the written folder's fingerprint (:func:`_stamp`), once written
        self.stamp: tuple[tuple[str, int, int, int], ...] | None = None
        # The tables, not the Book, and not as the thread's argument (a Thread holds its
        # arguments until it ends): the write empties this mapping table by table, so the
        # columns only the files keep are freed as soon as their table is written.
        self._tables: dict[str, Any] = book.tables()
        # Not a daemon: a process that exits before anyone waits still finishes the write.
        self._thread = threading.Thread(target=self._run, name=STAGING_THREAD)
        self._thread.start()

    def _run(self) -> None:
        from features.contract.io import write_staged_book

        try:
            tmp = self.target.with_name(self.target.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            # (cheap Parquet settings: a hand-off, read whole)
            write_staged_book(self._tables, tmp)
            _replace_dir(tmp, self.target)
            self.stamp = _stamp(self.target)
        except BaseException as exc:  # reported by wait()
            self.error = exc
        finally:
            self._tables.clear()  # a failed write frees the rest too

    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> BaseException | None:
        """Block until written; the write's exception, if it failed."""
        self._thread.join()
        return self.error

    def wait(self) -> None:
        """Block until written; :class:`StagingError` if the write failed."""
        if self.join() is not None:
            raise StagingError(
                f"staging the validated book to {self.target} failed: "
                f"{type(self.error).__name__}: {self.error}") from self.error


@dataclass(frozen=True)
class _Staged:
    """The Book this process last staged, with its write (done, or still on its thread);
    ``book`` None once handed over for good (``read_book(release=True)``)."""

    folder: Path
    write: _StagingWrite
    book: Book | None


# One slot: the last staged Book of this process (replaced by the next ingest, which
# empties it first so two big books never coexist). A lock, since Prefect may run the
# steps of one flow in threads.
_last: _Staged | None = None
_lock = threading.Lock()


def _stamp(folder: Path) -> tuple[tuple[str, int, int, int], ...]:
    """What identifies a staged folder's content: each file's name, size, modification
    time (ns) and inode; a re-staged folder (written anew, then swapped in) differs."""
    files = sorted(f for f in folder.iterdir() if f.is_file())
    return tuple((f.name, (st := f.stat()).st_size, st.st_mtime_ns, st.st_ino) for f in files)


def _remember(folder: Path, book: Book | None, write: _StagingWrite | None = None) -> None:
    global _last
    with _lock:
        _last = None if book is None or write is None else _Staged(folder.resolve(), write,
                                                                    book)


def _forget_book(folder: Path) -> None:
    """Drop the remembered Book of ``folder`` (keep its write, for :func:`wait_staged`)."""
    global _last
    with _lock:
        if _last is not None and folder.resolve() == _last.folder:
            _last = _Staged(_last.folder, _last.write, None)


def wait_staged(path: Path) -> None:
    """Wait until this process's staging write of ``path`` (if any) is done, so that the
    files are there (a no-op when nothing is being written). :class:`StagingError` when
    that write failed: a run scored from the Book in memory must not be published then
    (the score step calls this before publishing)."""
    with _lock:
        last = _last
    if last is not None and Path(path).resolve() == last.folder:
        last.write.wait()


def _handed(folder: Path) -> Book | None:
    """The Book this process staged at ``folder``: while its write is running (the files
    will hold exactly it), or if the folder still holds exactly the files written; else
    None (the write failed, another process re-staged it, or nothing was staged here)."""
    with _lock:
        last = _last
    if last is None or last.book is None or folder.resolve() != last.folder:
        return None
    if not last.write.running():
        if last.write.error is not None or not folder.is_dir():
            return None
        try:
            if _stamp(folder) != last.write.stamp:
                return None
        except OSError:  # a file vanished while looking: read what is there
            return None
    from features.contract.book import ALL_TABLES

    # Shallow copies: under pandas' copy-on-write a caller writing into its frames copies
    # them first, so the remembered Book stays as staged.
    return type(last.book)(**{t: getattr(last.book, t).copy(deep=False) for t in ALL_TABLES})


def read_book(path: Path, *, reuse: bool = True, release: bool = False) -> Book:
    """The Book staged by :func:`ingest` (already validated: typed, not re-checked).

    ``reuse``: when this process staged ``path`` and the folder is unchanged since, return
    that Book from memory (equal to what the files hold, without their staged-only columns:
    ``features.contract.book.STAGED_ONLY``) instead of reading the files;
    ``reuse=False`` always reads the files. ``release``: this process forgets the Book it
    staged at ``path`` (the write still waited for by :func:`wait_staged`), so the caller
    holds the only reference: dropping it frees the Book (the retrain, whose later stages
    need only the training set: ~7.6 GB at 1M accounts). A later read of ``path`` reads
    the files.
    """
    from features.contract.book import Book
    from features.contract.io import read_folder

    if reuse and (book := _handed(Path(path))) is not None:
        if release:
            _forget_book(Path(path))
        return book
    if release:
        _forget_book(Path(path))
    wait_staged(Path(path))  # this process's write of it, if any, first
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
           accept_anomalies: bool = False, background: bool = False) -> IngestSummary:
    """Validate the data folder ``source`` (bad rows to :func:`quarantine_dir`) and stage
    the kept rows as Parquet at :func:`staging_dir` for the later steps. A plausibility
    anomaly stops here (nothing staged) unless ``accept_anomalies``.

    ``background``: return once validated, the staged files written on a thread (see the
    module; :func:`wait_staged` waits for them, and the score step does before it
    publishes). The summary's ``seconds`` then exclude the write."""
    t0 = time.perf_counter()
    if background:  # the nightly: its score step's imports go beside the reading
        from pipelines.warm import import_on_thread

        import_on_thread()
    target = staging_dir(settings)
    with _lock:
        last = _last
    if last is not None:  # a write of the last ingest still running: let it end first
        last.write.join()
    from features.contract.book import without_staged_only

    _remember(target, None)  # free the last staged Book before reading
    book, facts = _validate(settings, source, None, accept_anomalies)
    target.parent.mkdir(parents=True, exist_ok=True)
    write = _StagingWrite(book, target)
    # for read_book in this process (the files for any other), without the columns only
    # the staged files keep (STAGED_ONLY): once written, no frame holds them any more
    _remember(target, without_staged_only(book), write)
    del book
    if not background and (error := write.join()) is not None:
        _remember(target, None)
        raise error  # as it was raised (a full disk, a read-only folder, ...)
    facts["seconds"] = time.perf_counter() - t0
    progress(
        f"  kept {facts['invoices']:,} invoices of {facts['accounts']:,} accounts, "
        f"quarantined {facts['quarantined']:,} rows ({facts['seconds']:.1f} s)"
    )
    return IngestSummary(**facts, staged=target)
