"""Checks of a collection's API address (`base_url`, `library_id`): free text would let
anyone with change permission send signed requests to internal services. The model
refuses a bad value; the client checks the stored one again before its first request."""

import re

from django.core.exceptions import ValidationError

from bibliotheca.conf import bibliotheca_settings
from jobs.validators import AddressProblem, split_operator_url

#: A library id is one path segment: no "/", "..", "?" or spaces can reach the URL.
LIBRARY_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
LIBRARY_ID_PROBLEM = "the library id must be a plain token (letters, digits, - and _)"
#: What a host[:port] part may contain once the host is allowed (no user, no "\\" or "@").
NETLOC = re.compile(r"[a-z0-9.-]+(:[0-9]{1,5})?")


def validate_library_id(value: str) -> None:
    if not LIBRARY_ID.fullmatch(value or ""):
        raise ValidationError(LIBRARY_ID_PROBLEM, code="library_id")


def validate_account_key(value: str) -> None:
    """Spaces around a pasted key are never part of it; a key of spaces is no key."""
    if not value or value != value.strip():
        raise ValidationError(
            "the account key must not be empty or start or end with spaces", code="account_key"
        )


def validate_base_url(value: str) -> None:
    problem = base_url_problem(value)
    if problem:
        raise ValidationError(problem, code="base_url")


def base_url_problem(value: str) -> str | None:
    """Why `value` may not be a collection's API address, or None when it may."""
    try:
        parts = split_operator_url(
            value,
            what="the API address",
            schemes=("https", "http") if bibliotheca_settings.ALLOW_HTTP else ("https",),
        )
    except AddressProblem as exc:
        return str(exc)
    allowed = bibliotheca_settings.ALLOWED_HOSTS
    host = parts.hostname or ""
    if host not in allowed or not NETLOC.fullmatch(parts.netloc.lower()):
        return (
            f"the API host must be one of {', '.join(sorted(allowed))} "
            "(BIBLIOTHECA_ALLOWED_HOSTS), with no user name or password"
        )
    if parts.query or parts.fragment:
        return "the API address must not have a query or a fragment"
    return None


def api_address_problem(*, base_url: str, library_id: str) -> str | None:
    """Why requests may not go to this collection's address, or None (the client's check)."""
    if not LIBRARY_ID.fullmatch(library_id or ""):
        return LIBRARY_ID_PROBLEM
    return base_url_problem(base_url)
