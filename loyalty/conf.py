"""Settings of the loyalty app (`LOYALTY_*`), read lazily: Django settings, else environment.

The wallet endpoints and tokens may come from the environment of the qcluster processes
(the demo points them at a fake wallet that way); a Django setting wins. They are never
job arguments: whoever may queue a job must not send the tokens to a host of their choice.
"""

from jobs.conf import AppSettings, Setting


class LoyaltySettings(AppSettings):
    prefix = "LOYALTY"
    settings = {
        #: Google Wallet API base; loyaltyObject PATCHes go to <base>/walletobjects/v1/loyaltyObject/<id>.
        "GOOGLE_WALLET_URL": Setting("https://walletobjects.googleapis.com", env=True),
        #: Bearer token of the Google Wallet service account (secret: env only, never logged).
        "GOOGLE_WALLET_TOKEN": Setting("", env=True),
        #: Apple pass web service base; pass-update pushes go to <base>/passes/v1/push/<serial>.
        "APPLE_WALLET_URL": Setting("https://wallet-push.invalid", env=True),
        #: Bearer token of the Apple pass web service (secret).
        "APPLE_WALLET_TOKEN": Setting("", env=True),
        #: Per-request timeout of a wallet call.
        "WALLET_TIMEOUT_SECONDS": Setting(5.0, env=True),
        #: Wallet calls in flight at once during a sync.
        "WALLET_SYNC_CONCURRENCY": Setting(32, env=True),
        #: The hourly sync covers cards with a transaction in this many last minutes.
        "WALLET_SYNC_WINDOW_MINUTES": Setting(60, env=True),
    }


loyalty_settings = LoyaltySettings()
