"""Checks shared by the commerce commands: one line, exit 2, before anything runs."""

from datetime import date

from django.core.management.base import CommandError

from jobs.cli_types import ascii_digits


def checked_date(value: str | None) -> str | None:
    """`--date` as the job takes it (YYYY-MM-DD), or CommandError."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise CommandError(f"--date {value!r} is not a date (YYYY-MM-DD)", returncode=2) from None


def checked_days(value: str | None) -> int | None:
    """`--days N` (a whole number of days, at least 1), or CommandError."""
    if value is None:
        return None
    # ASCII digits only: int() also reads "٣" and " 3_0 " (jobs.cli_types).
    days = int(value) if ascii_digits(value) and len(value) <= 18 else 0
    if days < 1:
        raise CommandError(
            f"--days {value!r} must be a whole number of days, 1 or more", returncode=2
        )
    return days
