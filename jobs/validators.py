"""The first checks of what an operator types into any app's settings or fields: an IANA time
zone name, a phone number, an address as one printable URL (each caller adds its own rules
and wording)."""

import re
from functools import cache
from urllib.parse import SplitResult, urlsplit
from zoneinfo import available_timezones

from django.core.exceptions import ValidationError

#: Files zoneinfo loads that are no place's zone: the host's own clock (it differs between
#: the hosts of a scale-out), the POSIX rules template and tzdata's "-00" placeholder.
NOT_A_PLACE = frozenset({"localtime", "posixrules", "Factory"})


@cache
def _known_timezones() -> frozenset[str]:
    # The IANA keys only: no "right/..." (leap-second clocks) or "posix/..." copies.
    return frozenset(available_timezones()) - NOT_A_PLACE


def validate_timezone_name(value: str) -> None:
    """Accept only IANA names zoneinfo knows ("America/New_York"), never offsets or abbreviations."""
    if value not in _known_timezones():
        raise ValidationError(f"unknown timezone {value!r}", code="timezone")


#: A phone number as people write it: an optional leading "+", digits and the usual
#: separators; E.164 allows at most 15 digits, and fewer than 6 reach no one.
_PHONE = re.compile(r"\+?[0-9()./ -]+")


def validate_phone_number(value: str) -> None:
    """Text that is no number ("n/a", a note) would make every SMS to it a dead notification."""
    digits = sum(c.isdigit() for c in value)
    if not (_PHONE.fullmatch(value) and value.isascii() and 6 <= digits <= 15):
        raise ValidationError(
            "a phone number is 6 to 15 digits, with an optional leading + and spaces,"
            " dashes, dots, slashes or brackets between them",
            code="phone",
        )


class AddressProblem(ValueError):
    """Why an address may not be used, in words for the operator who typed it."""


def split_operator_url(
    value: str, *, what: str, schemes: tuple[str, ...], require_host: bool = False
) -> SplitResult:
    """`value` split, or AddressProblem naming `what` (e.g. "the API address")."""
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise AddressProblem(f"{what} must be a URL without spaces")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise AddressProblem(f"{what} is not a valid URL") from None
    if parts.scheme not in schemes or (require_host and not parts.hostname):
        raise AddressProblem(f"{what} must start with {' or '.join(s + '://' for s in schemes)}")
    return parts
