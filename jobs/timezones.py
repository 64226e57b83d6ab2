"""Timezone names an operator may type: IANA places only, shared by every app's settings."""

from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

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
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown timezone {value!r}", code="timezone") from None
    if value not in _known_timezones():
        raise ValidationError(f"unknown timezone {value!r}", code="timezone")
