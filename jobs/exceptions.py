"""Exceptions of the jobs core. The docstring is the default message."""


class JobsError(Exception):
    """A jobs-core error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class UnknownJob(JobsError):
    """No job is registered under that name."""


class BadJobArguments(JobsError):
    """The arguments do not match the job's parameters."""


class PermanentJobError(JobsError):
    """A failure that retrying cannot fix (bad data, bad credentials); never retried."""


class TransientJobError(JobsError):
    """A failure that may pass (timeout, 5xx, connection lost); retried by policy."""


class JobSkipped(JobsError):
    """The job found nothing it may do now (e.g. its own lock is held); recorded `skipped`."""

    def __init__(self, message: str | None = None, *, details: dict | None = None) -> None:
        super().__init__(message)
        #: Added to the skipped run's result, e.g. `lock_held` (a manual run exits 3).
        self.details = dict(details or {})


class SoftTimeLimitExceeded(JobsError):
    """The run passed its soft time limit; raised at its next safe point, recorded `timed out`."""
