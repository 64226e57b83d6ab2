"""Errors of the Bibliotheca client. The docstring is the default message.

Timeouts and 5xx are transient (retried by the job's policy, lock kept); anything else
the remote does wrong is terminal for the chain (recorded failed, checkpoint intact).
"""

from jobs.exceptions import PermanentJobError, TransientJobError


class RequestTimedOut(TransientJobError):
    """The Bibliotheca API did not answer in time."""


class BadResponse(TransientJobError):
    """The Bibliotheca API answered with a server error (5xx)."""


class RemoteIntegrationError(PermanentJobError):
    """The Bibliotheca API refused the request or sent something we cannot read."""


class AddressNotAllowed(PermanentJobError):
    """The collection's API address is not allowed (https, BIBLIOTHECA_ALLOWED_HOSTS)."""
