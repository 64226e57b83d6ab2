"""The first checks of any address an operator types (an API's base URL, a webhook).

Whatever else an address must satisfy (an allowed host, no credentials), it is first one
printable URL without spaces, with a port in range and an allowed scheme. The message
names the setting or field, so each caller's wording stays its own.
"""

from urllib.parse import SplitResult, urlsplit


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
