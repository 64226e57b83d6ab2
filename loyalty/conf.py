"""Settings of the loyalty app, read lazily: `settings.LOYALTY_<NAME>`, else env, else default."""

import os

from django.conf import settings

_DEFAULTS: dict[str, object] = {
    #: Google Wallet API base; objects live under <base>/walletobjects/v1/loyaltyObject.
    "GOOGLE_WALLET_URL": "https://walletobjects.googleapis.com",
    #: Path of the Google service account's JSON key file (secret: readable by the app only).
    "GOOGLE_SERVICE_ACCOUNT_FILE": "",
    #: The same key's JSON content, for platforms that pass secrets as environment variables.
    "GOOGLE_SERVICE_ACCOUNT_JSON": "",
    #: Apple pass type identifier (pass.com.example.loyalty): pass.json and the APNs topic.
    "APPLE_PASS_TYPE_ID": "",
    #: Apple developer team identifier (pass.json, and the issuer of APNs provider tokens).
    "APPLE_TEAM_ID": "",
    #: The pass type ID certificate (PEM) and its private key (PEM), which sign the passes.
    "APPLE_PASS_CERT_FILE": "",
    "APPLE_PASS_KEY_FILE": "",
    #: Password of APPLE_PASS_KEY_FILE, if it is encrypted (secret).
    "APPLE_PASS_KEY_PASSWORD": "",
    #: Apple's WWDR intermediate certificate (PEM), shipped inside every signature.
    "APPLE_WWDR_CERT_FILE": "",
    #: APNs authentication key (.p8, ES256) and its key id: provider tokens for pushes.
    "APPLE_APNS_KEY_FILE": "",
    "APPLE_APNS_KEY_ID": "",
    #: APNs endpoint (HTTP/2); the sandbox is https://api.sandbox.push.apple.com.
    "APPLE_APNS_URL": "https://api.push.apple.com",
    #: Extra CA bundle (PEM) trusted for APNs besides the system's: local fakes only.
    "APPLE_APNS_CA_FILE": "",
    #: Public base URL of our PassKit web service, written into passes (https://host/passkit/).
    "APPLE_WEB_SERVICE_URL": "",
    #: Organization name shown on passes when the card's merchant has none.
    "APPLE_ORGANIZATION_NAME": "Loyalty",
    #: Per-request timeout of a wallet call.
    "WALLET_TIMEOUT_SECONDS": 5.0,
    #: Wallet calls in flight at once during a sync.
    "WALLET_SYNC_CONCURRENCY": 32,
    #: Cards one hourly run syncs at most; the rest stay behind for the next run.
    "WALLET_SYNC_MAX_CARDS_PER_RUN": 5000,
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


def loyalty_str(name: str) -> str:
    return str(loyalty_setting(name))
