"""The raw data contract (DESIGN section 3): the Book, reading and writing data folders, and
validation with named rules and quarantine.

``Book`` is what every library function takes; ``validate_folder`` / ``validate_tables``
are the one boundary where raw exports become a Book.
"""

from features.contract.book import TABLES, Book
from features.contract.io import read_folder, write_book, write_tables
from features.contract.options import Plausibility, ReadInfo, ReadOptions
from features.contract.plausibility import Anomaly
from features.contract.rules import RULES, DataContractError
from features.contract.validation import (
    ValidationResult,
    validate_folder,
    validate_tables,
    write_quarantine,
)

__all__ = [
    "RULES",
    "TABLES",
    "Anomaly",
    "Book",
    "DataContractError",
    "Plausibility",
    "ReadInfo",
    "ReadOptions",
    "ValidationResult",
    "read_folder",
    "validate_folder",
    "validate_tables",
    "write_book",
    "write_quarantine",
    "write_tables",
]
