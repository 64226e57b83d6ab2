"""Settings of the loyalty app, read lazily: `settings.LOYALTY_<NAME>`, else env, else default."""

import os

from django.conf import settings

_DEFAULTS: dict[str, object] = {
    #: Google Wallet API base; loyaltyObject PATCHes go to <base>/walletobjects/v1/loyaltyObject/<id>.
    "GOOGLE_WALLET_URL": "https://walletobjects.googleapis.com",
    #: Bearer token of the Google Wallet service account (secret: env only, never logged).
    "GOOGLE_WALLET_TOKEN": "",
    #: Apple pass web service base; pass-update pushes go to <base>/passes/v1/push/<serial>.
    "APPLE_WALLET_URL": "https://wallet-push.invalid",
    #: Bearer token of the Apple pass web service (secret).
    "APPLE_WALLET_TOKEN": "",
    #: Per-request timeout of a wallet call.
    "WALLET_TIMEOUT_SECONDS": 5.0,
    #: Wallet calls in flight at once during a sync.
    "WALLET_SYNC_CONCURRENCY": 32,
    #: The hourly sync covers cards with a transaction in this many last minutes.
    "WALLET_SYNC_WINDOW_MINUTES": 60,
}


def loyalty_setting(name: str) -> object:
    """The value of LOYALTY_<name>, typed like its default."""
    default = _DEFAULTS[name]
    value = getattr(settings, f"LOYALTY_{name}", None)
    if value is None:
        value = os.environ.get(f"LOYALTY_{name}")
    if value is None or value == "":
        return default
    return type(default)(value)
