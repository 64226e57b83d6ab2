"""Checks of the loyalty jobs' arguments, run before a run exists (jobs.arguments)."""

from datetime import datetime
from typing import Any

from jobs.exceptions import BadJobArguments, PermanentJobError
from loyalty.models import LoyaltyProgram


def parse_since(value: str, *, error: type[Exception] = PermanentJobError) -> datetime:
    """An ISO 8601 datetime with a zone; naive times would be read in the wrong zone.

    Raises `error`: PermanentJobError in the job, BadJobArguments before a run exists.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise error(f"since={value!r} is not an ISO 8601 datetime") from None
    if parsed.tzinfo is None:
        raise error(f"since={value!r} has no time zone (add +00:00 or Z)")
    return parsed


def check_expire_arguments(kwargs: dict[str, Any]) -> None:
    """As `manage.py expire_points --program`: the program exists and expires points."""
    program_id = kwargs.get("program_id")
    if program_id is None:
        return
    program = LoyaltyProgram.objects.filter(pk=program_id).first()
    if program is None:
        raise BadJobArguments(f"no loyalty program with id {program_id}")
    if not program.is_active or not program.points_expiration_days:
        raise BadJobArguments(
            f"program {program_id} does not expire points (inactive or no expiration days)"
        )


def check_sync_arguments(kwargs: dict[str, Any]) -> None:
    """`since` is an ISO 8601 datetime with a zone (the job would fail on it otherwise)."""
    since = kwargs.get("since")
    if since is None:
        return
    parse_since(since, error=BadJobArguments)
