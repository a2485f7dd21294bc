"""Amounts and dates formatted for an account's language (a small table, no locale data).

``babel`` is not a dependency of delinq, and letters need two things only: a money amount
with its currency and a calendar date. :data:`FORMATS` holds them per language; an
unknown or missing language reads as :data:`DEFAULT_LANGUAGE`. ``de-DE``, ``de_AT`` and
``DE`` all read as ``de``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

import pandas as pd

DEFAULT_LANGUAGE: Final = "en"
#: Currency symbols written instead of the ISO code (others keep the code).
SYMBOLS: Final = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


@dataclass(frozen=True)
class Format:
    """How one language writes numbers, money and dates.

    ``group``/``decimal``: thousands and decimal separators; ``symbol_first``: ``$1.00``
    rather than ``1,00 $``; ``months``: month names, January first; ``date``: a pattern
    with ``{day}``, ``{month}`` (name) and ``{year}``.
    """

    group: str
    decimal: str
    symbol_first: bool
    months: tuple[str, ...]
    date: str


FORMATS: Final[dict[str, Format]] = {
    "en": Format(",", ".", True, ("January", "February", "March", "April", "May", "June",
                                  "July", "August", "September", "October", "November",
                                  "December"), "{month} {day}, {year}"),
    "de": Format(".", ",", False, ("Januar", "Februar", "März", "April", "Mai", "Juni",
                                   "Juli", "August", "September", "Oktober", "November",
                                   "Dezember"), "{day}. {month} {year}"),
}


def language_of(tag: object) -> str:
    """The supported language of a tag (``de-DE`` -> ``de``), else :data:`DEFAULT_LANGUAGE`."""
    if not isinstance(tag, str) or not tag.strip():
        return DEFAULT_LANGUAGE
    base = tag.strip().replace("_", "-").split("-")[0].lower()
    return base if base in FORMATS else DEFAULT_LANGUAGE


def number(value: float, language: str, *, decimals: int = 2) -> str:
    """``value`` with the language's separators: ``1,234.50`` / ``1.234,50``."""
    f = FORMATS[language_of(language)]
    text = f"{abs(value):,.{decimals}f}"
    text = text.replace(",", "\0").replace(".", f.decimal).replace("\0", f.group)
    return f"-{text}" if round(value, decimals) < 0 else text


def money(value: float, currency: str, language: str) -> str:
    """An amount in ``currency`` (ISO code) as the language writes it: ``$1,234.50``,
    ``1.234,50 €``, ``CHF 1,234.50``."""
    f = FORMATS[language_of(language)]
    symbol = SYMBOLS.get(currency.upper(), currency.upper())
    digits = number(abs(value), language)
    sign = "-" if round(value, 2) < 0 else ""
    if f.symbol_first:
        gap = "" if symbol in SYMBOLS.values() else " "
        return f"{sign}{symbol}{gap}{digits}"
    return f"{sign}{digits} {symbol}"


def long_date(day: date | pd.Timestamp, language: str) -> str:
    """A calendar date as the language writes it: ``March 5, 2024`` / ``5. März 2024``."""
    f = FORMATS[language_of(language)]
    d = pd.Timestamp(day)
    return f.date.format(day=d.day, month=f.months[d.month - 1], year=d.year)
