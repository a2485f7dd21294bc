"""Reading CSV exports as they come: any of four delimiters, BOMs, UTF-16, malformed lines.

The reader returns every cell as a string exactly as written (nothing turned into NaN;
that is validation's job) plus, per malformed line, the internal column :data:`MALFORMED`
saying what is wrong, so validation can quarantine the line (rule ``malformed_line``)
instead of rejecting the whole file.

Two paths give the same cells. The fast one is polars' multi-threaded reader; it is taken
when the file is valid UTF-8 and every line has the header's field count. Polars fills a
short line's missing fields with "" (indistinguishable from empty cells), so whenever the
last column holds an empty cell, pyarrow's reader (which reports ragged rows) confirms
that no line is short. Anything else (a ragged line, a blank line, bad bytes) takes the
exact path: bad UTF-8 is refused naming its line; pyarrow, single-threaded so that it
numbers them, reads the records and hands over the ragged ones with their raw text (about
2.5 s per 5M rows, memory of the table only); they go back in place, and their physical
line is the record number unless quotes or blank lines make records span lines, in which
case a streaming walk with Python's ``csv`` finds it. What pyarrow cannot parse (an
unterminated quote) is read all in Python (about 2.5 s per million rows).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from features.contract.book import TABLES, columns_of
from features.contract.headers import header_key
from features.contract.options import DELIMITERS, ReadInfo, ReadOptions
from features.contract.rules import MALFORMED, DataContractError

_HEAD_BYTES = 1 << 16
_SNIFF_LINES = 50
_RAW_SHOWN = 200  # characters of a malformed line's raw text kept in its message
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def _known_names() -> set[str]:
    return {header_key(c) for t in TABLES for c in columns_of(t)}


def _records(text: str, delimiter: str, limit: int) -> list[list[str]]:
    """Up to ``limit`` non-empty records of ``text`` (lenient: a parse error ends it)."""
    out: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for rec in reader:
            if rec:
                out.append(rec)
            if len(out) >= limit:
                break
    except csv.Error:
        pass
    return out


def sniff_delimiter(head: str) -> tuple[str, str]:
    """(delimiter, how) for the CSV text ``head`` (its first lines).

    The candidate whose header has the most contract column names wins; ties go to the one
    whose first lines most often have the header's field count, then to more fields, then
    to :data:`DELIMITERS` order. A one-column file reads the same with any: ``","``.
    """
    known = _known_names()
    best: tuple[tuple[int, float, int, int], str] | None = None
    for rank, cand in enumerate(DELIMITERS):
        recs = _records(head, cand, _SNIFF_LINES)
        if not recs or len(recs[0]) < 2:
            continue
        header, n = recs[0], len(recs[0])
        named = sum(header_key(h) in known for h in header)
        consistent = sum(len(r) == n for r in recs[1:]) / max(1, len(recs) - 1)
        score = (named, consistent, n, -rank)
        if best is None or score > best[0]:
            best = (score, cand)
    if best is None:
        return ",", "default"
    return best[1], "detected"


def _load(file: Path) -> tuple[bytes | None, bytes]:
    """(whole content or None when polars can read the path directly, first bytes)."""
    if file.name.endswith(".gz"):
        try:
            data = gzip.decompress(file.read_bytes())
        except (OSError, EOFError) as exc:
            raise DataContractError(file.name, None, "unreadable_file",
                                    f"is not a readable gzip file ({exc})") from exc
        return data, data[:_HEAD_BYTES]
    with file.open("rb") as fh:
        return None, fh.read(_HEAD_BYTES)


def _encoding(head: bytes, options: ReadOptions) -> str:
    """The codec: set by the options, else told by a byte-order mark, else UTF-8."""
    if options.encoding is not None:
        name = codecs.lookup(options.encoding).name
        return "utf-8" if name in ("utf-8", "utf-8-sig") else name
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    return "utf-8"


def _decode(data: bytes, codec: str, name: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        detail = (f"is not valid {codec} (line {line}, byte {exc.start}: {exc.reason}); "
                  "re-save it as UTF-8 or set the read option encoding")
        raise DataContractError(name, None, "bad_encoding", detail) from exc


def _header(head_text: str, delimiter: str, name: str) -> list[str]:
    """Column names from the first record; blanks named ``unnamed_<i>``; duplicates refused."""
    recs = _records(head_text, delimiter, 1)
    if not recs:
        return []
    names = [h if h.strip() else f"unnamed_{i + 1}" for i, h in enumerate(recs[0])]
    seen: set[str] = set()
    for h in names:
        if h.startswith("__"):
            raise DataContractError(name, h, "reserved_column",
                                    "starts with '__', which is reserved for validation's own "
                                    "columns")
        if h in seen:
            raise DataContractError(name, h, "duplicate_column",
                                    "appears twice in the header")
        seen.add(h)
    return names


def read_csv(
    file: str | Path, options: ReadOptions | None = None
) -> tuple[pl.DataFrame, ReadInfo]:
    """Read one CSV table: every cell a string, plus :data:`MALFORMED` for bad lines.

    A zero-byte or blank file gives a frame without columns (validation reports
    ``empty_file``). Raises :class:`DataContractError`: ``bad_encoding`` (naming the line),
    ``duplicate_column``, ``unreadable_file``.
    """
    file = Path(file)
    options = options or ReadOptions()
    data, head = _load(file)
    codec = _encoding(head, options)
    if codec != "utf-8":  # recode once to UTF-8, which both parsers read
        text = _decode(data if data is not None else file.read_bytes(), codec, file.name)
        data = text.lstrip("\ufeff").encode("utf-8")
        head = data[:_HEAD_BYTES]
    head_text = head.decode("utf-8-sig", errors="replace")
    if len(head) >= _HEAD_BYTES:
        head_text = head_text[: head_text.rfind("\n") + 1] or head_text  # whole lines only
    if options.delimiter is not None:
        delimiter, how = options.delimiter, "set"
    else:
        delimiter, how = sniff_delimiter(head_text)
    info = ReadInfo(file=file.name, kind="csv", encoding=codec, delimiter=delimiter,
                    delimiter_how=how)
    header = _header(head_text, delimiter, file.name)
    if not header:
        return pl.DataFrame(), info
    source: bytes | Path = data if data is not None else file
    frame = _fast(source, delimiter, header)
    if frame is None:
        frame = _exact(source, delimiter, header, file.name)
    malformed = int(frame.get_column(MALFORMED).is_not_null().sum()) if (
        MALFORMED in frame.columns) else 0
    return frame, replace(info, malformed_lines=malformed)


def _fast(source: bytes | Path, delimiter: str, header: list[str]) -> pl.DataFrame | None:
    """All records via polars when every line is well formed, else None."""
    src = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        frame = pl.read_csv(src, separator=delimiter, infer_schema=False,
                            empty_string_is_null=False, raise_if_empty=False)
    except (pl.exceptions.PolarsError, OSError):
        return None  # ragged line (too many fields), bad UTF-8, ...: the exact path says
    if frame.width != len(header) or frame.null_count().sum_horizontal().item():
        return None
    frame = frame.rename(dict(zip(frame.columns, header, strict=True)))
    if frame.height and bool((frame.get_column(header[-1]) == "").any()):
        # A short line and an empty last cell look alike here: ask pyarrow, which sees
        # ragged rows (and skips blank lines, so a blank line shows as a count mismatch).
        ragged = _ragged_rows(source, delimiter, header)
        if ragged is None or ragged[0] or ragged[1] != frame.height:
            return None
    return frame


def _arrow(source: bytes | Path, delimiter: str, header: list[str], handler: object,
           *, threads: bool, columns: list[str] | None = None) -> pa.Table:
    """pyarrow's CSV reader on ``source`` with our header: every cell a string, "" kept,
    quoted line breaks allowed; ``handler`` sees each ragged row (and skips it)."""
    src = pa.BufferReader(source) if isinstance(source, bytes) else str(source)
    return pacsv.read_csv(
        src,
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, use_threads=threads),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                         invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(
            column_types={h: pa.string() for h in header}, include_columns=columns,
            strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


def _ragged_rows(source: bytes | Path, delimiter: str, header: list[str]) -> tuple[int, int] | None:
    """(ragged rows, well-formed rows) as pyarrow reads them; None if it cannot."""
    ragged = 0

    def count(_row: object) -> str:
        nonlocal ragged
        ragged += 1
        return "skip"

    try:
        table = _arrow(source, delimiter, header, count, threads=True, columns=[header[0]])
    except (pa.ArrowException, OSError):
        return None
    return ragged, table.num_rows


def _exact(source: bytes | Path, delimiter: str, header: list[str], name: str) -> pl.DataFrame:
    """Every record in file order; ragged ones flagged in :data:`MALFORMED` with their line.

    pyarrow, single-threaded so that it numbers the ragged rows (~2.5 s and little memory
    per 5M rows), reads the well-formed rows; the few ragged ones are split by Python's
    ``csv`` and put back in place. Bad UTF-8 is refused naming its line.
    """
    _check_utf8(source, name)  # (pyarrow's row handler cannot show a row with bad bytes)
    bad: list[tuple[int, int, str]] = []

    def keep(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.actual_columns, row.text))
        return "skip"

    try:
        table = _arrow(source, delimiter, header, keep, threads=False)
    except pa.ArrowInvalid:
        raw = source if isinstance(source, bytes) else source.read_bytes()
        return _exact_python(_decode(raw.removeprefix(codecs.BOM_UTF8), "utf-8", name),
                             delimiter, header, name)
    good = pl.from_arrow(table)
    assert isinstance(good, pl.DataFrame)
    if not bad or any(number is None for number, _, _ in bad):
        if bad:  # pyarrow did not number them: Python's csv does
            raw = source if isinstance(source, bytes) else source.read_bytes()
            return _exact_python(_decode(raw.removeprefix(codecs.BOM_UTF8), "utf-8", name),
                                 delimiter, header, name)
        return good.with_columns(pl.lit(None, dtype=pl.String).alias(MALFORMED))
    n = len(header)
    records = [number - 1 for number, _, _ in bad]  # pyarrow counts the header as 1
    lines = _start_lines(source, delimiter, [number for number, _, _ in bad])
    cells: list[list[str]] = []
    notes = []
    for (number, actual, text), line in zip(bad, lines, strict=True):
        fields = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
        cells.append((fields + [""] * n)[:n])
        shown = text if len(text) <= _RAW_SHOWN else text[:_RAW_SHOWN] + "..."
        where = f"line {line}" if line is not None else f"record {number}"
        notes.append(f"{where} has {actual} fields where the header has {n} (raw: {shown})")
    ragged = pl.DataFrame([pl.Series(h, [c[i] for c in cells], dtype=pl.String)
                           for i, h in enumerate(header)])
    ragged = ragged.with_columns(pl.Series(MALFORMED, notes, dtype=pl.String),
                                 pl.Series("__record", records, dtype=pl.Int64))
    total = good.height + len(bad)
    others = np.setdiff1d(np.arange(1, total + 1, dtype=np.int64), np.array(records))
    good = good.with_columns(pl.lit(None, dtype=pl.String).alias(MALFORMED),
                             pl.Series("__record", others, dtype=pl.Int64))
    return pl.concat([good, ragged]).sort("__record").drop("__record")


def _chunks(source: bytes | Path, size: int = 1 << 24):
    """The bytes of ``source`` in blocks (a file is never read whole)."""
    if isinstance(source, bytes):
        for i in range(0, len(source), size):
            yield source[i:i + size]
        return
    with source.open("rb") as fh:
        while block := fh.read(size):
            yield block


def _check_utf8(source: bytes | Path, name: str) -> None:
    """Raise ``bad_encoding`` naming the line of the first byte that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    for block in _chunks(source):
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            at = max(0, exc.start)
            line += block[:at].count(b"\n")
            detail = (f"is not valid utf-8 (line {line}, byte {offset + at}: {exc.reason}); "
                      "re-save it as UTF-8 or set the read option encoding")
            raise DataContractError(name, None, "bad_encoding", detail) from exc
        offset, line = offset + len(block), line + block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        detail = (f"is not valid utf-8 (its last bytes: {exc.reason}); re-save it as UTF-8 "
                  "or set the read option encoding")
        raise DataContractError(name, None, "bad_encoding", detail) from exc


def _start_lines(source: bytes | Path, delimiter: str, numbers: list[int]) -> list[int | None]:
    """The physical line on which each record (pyarrow's 1-based number, header = 1)
    starts. Without quotes and blank lines a record is a line; otherwise Python's ``csv``
    walks the file (streaming) up to the last record asked for."""
    quotes = blanks = False
    tail = b""
    for block in _chunks(source):
        joined = tail + block
        quotes = quotes or b'"' in block
        blanks = blanks or b"\n\n" in joined or b"\n\r\n" in joined or joined.startswith(b"\n")
        tail = block[-2:]
    if not quotes and not blanks:
        return list(numbers)
    wanted, found = set(numbers), {}
    stream = io.TextIOWrapper(io.BytesIO(source) if isinstance(source, bytes)
                              else source.open("rb"), encoding="utf-8-sig", newline="")
    with stream:
        reader = csv.reader(stream, delimiter=delimiter)
        record, end = 0, 0
        try:
            for rec in reader:
                start, end = end + 1, reader.line_num
                if not rec:
                    continue
                record += 1
                if record in wanted:
                    found[record] = start
                    if len(found) == len(wanted):
                        break
        except (csv.Error, UnicodeDecodeError):
            pass
    return [found.get(n) for n in numbers]


def _exact_python(text: str, delimiter: str, header: list[str], name: str) -> pl.DataFrame:
    """Records with exact physical line numbers, all in Python (a fallback for what
    pyarrow cannot parse, such as an unterminated quote; memory ~10x the file)."""
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(iter(lines), delimiter=delimiter)
    n = len(header)
    cols: list[list[str]] = [[] for _ in range(n)]
    bad: list[str | None] = []
    seen_header = False
    end = 0
    try:
        for rec in reader:
            start, end = end + 1, reader.line_num
            if not rec:
                continue  # blank line: not a record
            if not seen_header:
                seen_header = True
                continue
            if len(rec) == n:
                bad.append(None)
            else:
                raw = "".join(lines[start - 1:end]).rstrip("\r\n")
                shown = raw if len(raw) <= _RAW_SHOWN else raw[:_RAW_SHOWN] + "..."
                bad.append(f"line {start} has {len(rec)} fields where the header has {n} "
                           f"(raw: {shown})")
                rec = (rec + [""] * n)[:n]
            for col, cell in zip(cols, rec, strict=True):
                col.append(cell)
    except csv.Error as exc:
        raise DataContractError(name, None, "unreadable_file",
                                f"cannot be read past line {end + 1} ({exc})") from exc
    frame = pl.DataFrame({h: pl.Series(c, dtype=pl.String) for h, c in zip(header, cols,
                                                                            strict=True)})
    return frame.with_columns(pl.Series(MALFORMED, bad, dtype=pl.String))
