"""Benchmark: the validated Book's memory per table and column (issue 20 item 1, issue 11).

    python -m bench.book_bytes DIR [--json PATH]

Validates the data folder ``DIR`` (``features.contract.validation.validate_folder``,
quarantine to a temporary folder) and prints, per table and column, the dtype and the bytes
the Book holds (pandas ``memory_usage(deep=True)``: Arrow strings, codes with their
categories, numpy columns), each table's total and the Book's, in MB.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def book_bytes(folder: Path) -> dict[str, dict[str, tuple[str, int]]]:
    """``{table: {column: (dtype, bytes)}}`` of the validated Book of ``folder``."""
    from features.contract.validation import validate_folder

    with tempfile.TemporaryDirectory() as quarantine:
        book = validate_folder(folder, quarantine_dir=quarantine).book
    out: dict[str, dict[str, tuple[str, int]]] = {}
    for table, frame in book.tables().items():
        used = frame.memory_usage(deep=True, index=False)
        out[table] = {c: (str(frame[c].dtype), int(used[c])) for c in frame.columns}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = book_bytes(args.folder)
    total = 0
    for table, columns in figures.items():
        size = sum(b for _, b in columns.values())
        total += size
        print(f"{table:<10} {size / 1e6:10.1f} MB")
        for column, (dtype, b) in columns.items():
            print(f"  {column:<22} {dtype:<16} {b / 1e6:10.1f} MB")
    print(f"{'Book':<10} {total / 1e6:10.1f} MB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
