"""Errors of the loyalty app; the docstring is the default message."""


class WalletError(Exception):
    """A wallet call failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class TransientWalletError(WalletError):
    """The wallet answered 5xx/429 or did not answer in time; worth retrying."""


class UnconfirmedDeviceToken(WalletError):
    """APNs called a device token bad before accepting any push of ours: our APNs URL may be
    the wrong environment for every device, so the card fails but is not quarantined."""


class PermanentWalletError(WalletError):
    """The wallet refused the update (4xx); retrying will not help."""


class WalletCredentialsError(PermanentWalletError):
    """The wallet refused our credentials (missing, invalid or not allowed)."""


class WalletNotConfigured(WalletCredentialsError):
    """The wallet's credentials are not configured."""
