"""The two wallet clients, built from settings only and kept per process.

Kept, so that Google's access token and APNs' provider token and HTTP/2 connection
outlive one run (a worker runs the hourly job many times); rebuilt when the settings
they come from change, or a credential file is replaced. A wallet whose settings are missing or unusable has no client
and says why: the sync stops that wallet with that line instead of failing each card.
"""

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from loyalty.conf import loyalty_settings
from loyalty.exceptions import WalletNotConfigured
from loyalty.services.apns import (
    CERTIFICATE,
    TOKEN,
    ApnsClient,
    ClientCertificate,
    ProviderTokenKey,
    read_key_file,
)
from loyalty.services.google_wallet import GoogleWalletClient, load_service_account_info

_SETTINGS = (
    "GOOGLE_WALLET_URL",
    "GOOGLE_SERVICE_ACCOUNT_FILE",
    "GOOGLE_SERVICE_ACCOUNT_JSON",
    "APPLE_PASS_TYPE_ID",
    "APPLE_TEAM_ID",
    "APPLE_APNS_AUTH",
    "APPLE_PASS_CERT_FILE",
    "APPLE_PASS_KEY_FILE",
    "APPLE_PASS_KEY_PASSWORD",
    "APPLE_APNS_KEY_FILE",
    "APPLE_APNS_KEY_ID",
    "APPLE_APNS_URL",
    "APPLE_APNS_CA_FILE",
    "WALLET_TIMEOUT_SECONDS",
)
#: Credential files: a key replaced under the same name is a change of settings too.
_FILES = (
    "GOOGLE_SERVICE_ACCOUNT_FILE",
    "APPLE_PASS_CERT_FILE",
    "APPLE_PASS_KEY_FILE",
    "APPLE_APNS_KEY_FILE",
)


@dataclass(frozen=True, kw_only=True)
class WalletClients:
    google: GoogleWalletClient | None
    apple: ApnsClient | None
    #: Why a client is missing ("" when it is there).
    google_problem: str = ""
    apple_problem: str = ""


_lock = threading.Lock()
_cached: tuple[tuple, WalletClients] | None = None


def wallet_clients() -> WalletClients:
    """The clients for the current settings (built on first use, then reused)."""
    global _cached
    # The pid too: a forked worker must not use its parent's APNs event-loop thread,
    # which does not exist in the child.
    key = (
        os.getpid(),
        *(getattr(loyalty_settings, name) for name in _SETTINGS),
        *(_file_stamp(str(getattr(loyalty_settings, name))) for name in _FILES),
    )
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        if _cached is not None and _cached[1].apple is not None and _cached[0][0] == key[0]:
            _cached[1].apple.close()
        clients = _build()
        _cached = (key, clients)
        return clients


def _file_stamp(path: str) -> tuple[int, int] | None:
    """(modification time, size) of a credential file: rotated in place, it is reloaded."""
    try:
        stat = Path(path).stat() if path else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat else None


def _apple_client(timeout: float) -> ApnsClient:
    """The APNs client of the configured authentication (WalletNotConfigured: what is missing)."""
    auth = str(loyalty_settings.APPLE_APNS_AUTH)
    if auth not in (CERTIFICATE, TOKEN):
        raise WalletNotConfigured(
            f"LOYALTY_APPLE_APNS_AUTH is {auth[:20]!r}: {CERTIFICATE} or {TOKEN}"
        )
    token_names = ("APPLE_TEAM_ID", "APPLE_APNS_KEY_ID") if auth == TOKEN else ()
    for name in ("APPLE_PASS_TYPE_ID", *token_names):
        if not str(getattr(loyalty_settings, name)):
            raise WalletNotConfigured(f"not configured (set LOYALTY_{name})")
    certificate = token_key = None
    if auth == CERTIFICATE:
        certificate = ClientCertificate(
            cert_file=loyalty_settings.APPLE_PASS_CERT_FILE,
            key_file=loyalty_settings.APPLE_PASS_KEY_FILE,
            password=loyalty_settings.APPLE_PASS_KEY_PASSWORD,
        )
    else:
        token_key = ProviderTokenKey(
            team_id=loyalty_settings.APPLE_TEAM_ID,
            key_id=loyalty_settings.APPLE_APNS_KEY_ID,
            private_key_pem=read_key_file(
                loyalty_settings.APPLE_APNS_KEY_FILE, setting="APPLE_APNS_KEY_FILE"
            ),
        )
    return ApnsClient(
        base_url=loyalty_settings.APPLE_APNS_URL,
        topic=loyalty_settings.APPLE_PASS_TYPE_ID,
        timeout_seconds=timeout,
        certificate=certificate,
        token_key=token_key,
        ca_file=loyalty_settings.APPLE_APNS_CA_FILE,
    )


def _build() -> WalletClients:
    timeout = float(loyalty_settings.WALLET_TIMEOUT_SECONDS)
    google = apple = None
    google_problem = apple_problem = ""
    try:
        info = load_service_account_info(
            key_file=loyalty_settings.GOOGLE_SERVICE_ACCOUNT_FILE,
            key_json=loyalty_settings.GOOGLE_SERVICE_ACCOUNT_JSON,
        )
        google = GoogleWalletClient(
            base_url=loyalty_settings.GOOGLE_WALLET_URL,
            service_account_info=info,
            timeout_seconds=timeout,
        )
    except WalletNotConfigured as exc:
        google_problem = str(exc)
    try:
        apple = _apple_client(timeout)
    except WalletNotConfigured as exc:
        apple_problem = str(exc)
    return WalletClients(
        google=google, apple=apple, google_problem=google_problem, apple_problem=apple_problem
    )
