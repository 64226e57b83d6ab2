"""Exceptions of the exchanges app. The docstring is the default message.

They are permanent job errors: retrying a draw that cannot be made, or an exchange in
the wrong state, changes nothing.
"""

from jobs.exceptions import PermanentJobError


class ExchangesError(PermanentJobError):
    """An exchanges error."""


class ExchangeNotFound(ExchangesError):
    """No exchange has that id."""


class InvalidExchangeState(ExchangesError):
    """The exchange is not in a state that allows this."""


class MatchingImpossible(ExchangesError):
    """No draw satisfies the exclusions."""
