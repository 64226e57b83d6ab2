"""Errors of the Bibliotheca client. The docstring is the default message.

Timeouts, 5xx and 429 are transient (retried by the job's policy, lock kept); anything else
the remote does wrong is terminal for the chain (recorded failed, checkpoint intact).
"""

from jobs.exceptions import PermanentJobError, TransientJobError


class RequestTimedOut(TransientJobError):
    """The Bibliotheca API did not answer in time."""


class BadResponse(TransientJobError):
    """The Bibliotheca API answered with a server error (5xx)."""


class RateLimited(BadResponse):
    """The Bibliotheca API asked us to slow down (429)."""

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        #: Seconds the API asked us to wait (its Retry-After), if it said.
        self.retry_after = retry_after


class RemoteIntegrationError(PermanentJobError):
    """The Bibliotheca API refused the request or sent something we cannot read."""


class AddressNotAllowed(PermanentJobError):
    """The collection's API address is not allowed (https, BIBLIOTHECA_ALLOWED_HOSTS)."""


class RetryAfterTooLong(PermanentJobError):
    """The Bibliotheca API asked us to wait longer than BIBLIOTHECA_RETRY_AFTER_LIMIT_SECONDS."""
