"""Contact data of the accounts table: e-mail addresses, and the ``invalid_email`` rule.

``accounts.email`` may hold several addresses separated by ``;`` (DESIGN section 3). An
address that does not look like ``local@domain.tld`` is the named rule
:data:`INVALID_EMAIL`. It is *not* a row rule of validation: the account's other data is
sound, so it is never quarantined; dunning (``serving.dunning``) routes the account to its
send log with that reason instead of writing to any of its addresses (a typo in one
address may mean a letter to the wrong customer). An empty field is :data:`NO_EMAIL`.
"""

from __future__ import annotations

import re
from typing import Final

#: The account's ``email`` holds an address that is not ``local@domain.tld``.
INVALID_EMAIL: Final = "invalid_email"
#: The account has no ``email`` (nothing to send to).
NO_EMAIL: Final = "no_email"
#: The contact rules: reasons in the dunning send log, never quarantine rules.
CONTACT_RULES: Final = (INVALID_EMAIL, NO_EMAIL)
#: What separates several addresses in one ``email`` field.
EMAIL_SEPARATOR: Final = ";"

# Deliberately plain (what ERP exports hold): one @, no spaces, quotes, angle brackets,
# commas or control characters (a CR/LF would inject mail headers), a dotted domain
# ending in letters.
_ADDRESS: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")


def split_emails(text: object) -> list[str]:
    """The addresses of an ``email`` field (split on ``;``, stripped, blanks dropped);
    ``[]`` for a missing value."""
    if text is None or not isinstance(text, str):
        return []
    return [part.strip() for part in text.split(EMAIL_SEPARATOR) if part.strip()]


def is_valid_email(address: str) -> bool:
    """Whether one address looks like ``local@domain.tld`` (no header-breaking text)."""
    local = address.split("@", 1)[0]
    return bool(_ADDRESS.fullmatch(address)) and not (
        local.startswith(".") or local.endswith(".") or ".." in address)


def email_rule(text: object) -> tuple[list[str], str | None]:
    """``(addresses, rule)`` of an ``email`` field: the addresses to write to and
    ``None``, or ``[]`` and the rule it breaks (:data:`NO_EMAIL`, :data:`INVALID_EMAIL`
    when any address is invalid)."""
    addresses = split_emails(text)
    if not addresses:
        return [], NO_EMAIL
    if not all(is_valid_email(a) for a in addresses):
        return [], INVALID_EMAIL
    return addresses, None
