"""Settings of the loyalty app (`LOYALTY_*`; docs/loyalty.md, "Wallet setup").

Wallet endpoints and credentials are settings (or the qclusters' environment) only, never
job arguments: whoever may queue a job must not send the credentials to a host of their choice.
"""

from pathlib import Path

from jobs.conf import AppSettings, Setting
from loyalty.exceptions import WalletNotConfigured


class LoyaltySettings(AppSettings):
    prefix = "LOYALTY"
    settings = {
        "GOOGLE_WALLET_URL": Setting("https://walletobjects.googleapis.com", env=True),
        #: The service account's JSON key (secret): a file readable by the app only, or its
        #: content for platforms that pass secrets as environment variables.
        "GOOGLE_SERVICE_ACCOUNT_FILE": Setting("", env=True),
        "GOOGLE_SERVICE_ACCOUNT_JSON": Setting("", env=True),
        "APPLE_PASS_TYPE_ID": Setting("", env=True),
        "APPLE_TEAM_ID": Setting("", env=True),
        #: PEM files: the pass type ID certificate and its key sign the passes, shipped with
        #: Apple's WWDR intermediate certificate.
        "APPLE_PASS_CERT_FILE": Setting("", env=True),
        "APPLE_PASS_KEY_FILE": Setting("", env=True),
        "APPLE_PASS_KEY_PASSWORD": Setting("", env=True),
        "APPLE_WWDR_CERT_FILE": Setting("", env=True),
        #: How pushes authenticate to APNs: "certificate" (the pass type certificate and key
        #: above, as Apple's Wallet guide asks) or "token" (the .p8 key and its id below).
        "APPLE_APNS_AUTH": Setting("certificate", env=True),
        "APPLE_APNS_KEY_FILE": Setting("", env=True),
        "APPLE_APNS_KEY_ID": Setting("", env=True),
        "APPLE_APNS_URL": Setting("https://api.push.apple.com", env=True),
        #: Extra CA bundle (PEM) trusted for APNs besides the system's: local fakes only.
        "APPLE_APNS_CA_FILE": Setting("", env=True),
        #: Public base URL of our PassKit web service, written into passes (https://host/passkit/).
        "APPLE_WEB_SERVICE_URL": Setting("", env=True),
        #: Devices one pass may be registered on; past it a new device is refused (403).
        "APPLE_MAX_DEVICES_PER_PASS": Setting(10, env=True),
        #: Device log lines (PassKit /v1/log) written to our log per minute and process.
        "PASSKIT_LOG_LINES_PER_MINUTE": Setting(60, env=True, zero_ok=True),
        #: Organization name shown on passes when the card's merchant has none.
        "APPLE_ORGANIZATION_NAME": Setting("Loyalty", env=True),
        #: Per-request timeout of a wallet call.
        "WALLET_TIMEOUT_SECONDS": Setting(5.0, env=True),
        #: Wallet calls in flight at once during a sync.
        "WALLET_SYNC_CONCURRENCY": Setting(32, env=True),
        #: Cards one hourly run syncs at most; the rest stay behind for the next run.
        "WALLET_SYNC_MAX_CARDS_PER_RUN": Setting(5000, env=True),
    }


loyalty_settings = LoyaltySettings()


def read_setting_file(name: str) -> bytes:
    """The file named by the setting LOYALTY_<name>; WalletNotConfigured names what is missing."""
    path = str(getattr(loyalty_settings, name))
    if not path:
        raise WalletNotConfigured(f"not configured (set LOYALTY_{name})")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise WalletNotConfigured(f"LOYALTY_{name}: cannot read {path}: {exc.strerror}") from None
