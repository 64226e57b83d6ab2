"""Exceptions of the commerce app. The docstring is the default message."""


class CommerceError(Exception):
    """A commerce error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class OutOfStock(CommerceError):
    """Not enough stock for the delivery."""


class UnknownSubscription(CommerceError):
    """No subscription has that provider subscription id."""


class BadEvent(CommerceError):
    """The event lacks a field we need."""


class SubscriptionEnded(CommerceError):
    """The subscription is cancelled or completed: it is never delivered again."""


class SecondCharge(CommerceError):
    """Another payment already paid the delivery this charge is for: refund this one."""
