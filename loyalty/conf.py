"""Settings of the loyalty app (`LOYALTY_*`), read lazily: Django settings, else environment.

The wallet endpoints, key files and passwords may come from the environment of the
qcluster processes (the demo points them at the fake wallets that way; platforms pass
secrets as environment variables); a Django setting wins. They are never job arguments:
whoever may queue a job must not send the credentials to a host of their choice.
"""

from pathlib import Path

from jobs.conf import AppSettings, Setting
from loyalty.exceptions import WalletNotConfigured


class LoyaltySettings(AppSettings):
    prefix = "LOYALTY"
    settings = {
        #: Google Wallet API base; objects live under <base>/walletobjects/v1/loyaltyObject.
        "GOOGLE_WALLET_URL": Setting("https://walletobjects.googleapis.com", env=True),
        #: Path of the Google service account's JSON key file (secret: readable by the app only).
        "GOOGLE_SERVICE_ACCOUNT_FILE": Setting("", env=True),
        #: The same key's JSON content, for platforms that pass secrets as environment variables.
        "GOOGLE_SERVICE_ACCOUNT_JSON": Setting("", env=True),
        #: Apple pass type identifier (pass.com.example.loyalty): pass.json and the APNs topic.
        "APPLE_PASS_TYPE_ID": Setting("", env=True),
        #: Apple developer team identifier (pass.json, and the issuer of APNs provider tokens).
        "APPLE_TEAM_ID": Setting("", env=True),
        #: The pass type ID certificate (PEM) and its private key (PEM), which sign the passes.
        "APPLE_PASS_CERT_FILE": Setting("", env=True),
        "APPLE_PASS_KEY_FILE": Setting("", env=True),
        #: Password of APPLE_PASS_KEY_FILE, if it is encrypted (secret).
        "APPLE_PASS_KEY_PASSWORD": Setting("", env=True),
        #: Apple's WWDR intermediate certificate (PEM), shipped inside every signature.
        "APPLE_WWDR_CERT_FILE": Setting("", env=True),
        #: How pushes authenticate to APNs: "certificate" (the pass type certificate and key
        #: above, as Apple's Wallet guide asks) or "token" (the .p8 key below).
        "APPLE_APNS_AUTH": Setting("certificate", env=True),
        #: APNs authentication key (.p8, ES256) and its key id: provider tokens (token auth only).
        "APPLE_APNS_KEY_FILE": Setting("", env=True),
        "APPLE_APNS_KEY_ID": Setting("", env=True),
        #: APNs endpoint (HTTP/2); the sandbox is https://api.sandbox.push.apple.com.
        "APPLE_APNS_URL": Setting("https://api.push.apple.com", env=True),
        #: Extra CA bundle (PEM) trusted for APNs besides the system's: local fakes only.
        "APPLE_APNS_CA_FILE": Setting("", env=True),
        #: Public base URL of our PassKit web service, written into passes (https://host/passkit/).
        "APPLE_WEB_SERVICE_URL": Setting("", env=True),
        #: Devices one pass may be registered on; past it a new device is refused (403).
        "APPLE_MAX_DEVICES_PER_PASS": Setting(10, env=True),
        #: Device log lines (PassKit /v1/log) written to our log per minute and process.
        "PASSKIT_LOG_LINES_PER_MINUTE": Setting(60, env=True),
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
