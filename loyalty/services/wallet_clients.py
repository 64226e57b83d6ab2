"""The two wallet clients, built from settings only and kept per process.

Kept, so that Google's access token and APNs' provider token and HTTP/2 connection
outlive one run; rebuilt when the settings they come from change or a credential file is
replaced. A wallet whose settings are missing or unusable has no client and says why:
the sync stops that wallet with that line instead of failing each card.
"""

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loyalty.conf import loyalty_settings
from loyalty.exceptions import WalletNotConfigured
from loyalty.services.apns import ApnsClient
from loyalty.services.google_wallet import GoogleWalletClient

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
        # A credential file replaced under the same name is a change of settings too.
        *(_file_stamp(str(getattr(loyalty_settings, n))) for n in _SETTINGS if n.endswith("_FILE")),
    )
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        if _cached is not None and _cached[1].apple is not None and _cached[0][0] == key[0]:
            _cached[1].apple.close()
        google, google_problem = _client(GoogleWalletClient)
        apple, apple_problem = _client(ApnsClient)
        clients = WalletClients(
            google=google, apple=apple, google_problem=google_problem, apple_problem=apple_problem
        )
        _cached = (key, clients)
        return clients


def _file_stamp(path: str) -> tuple[int, int] | None:
    """(modification time, size) of a credential file: rotated in place, it is reloaded."""
    try:
        stat = Path(path).stat() if path else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat else None


def _client(build: Callable[[], Any]) -> tuple[Any, str]:
    """(the client, "") or (None, why it cannot be built)."""
    try:
        return build(), ""
    except WalletNotConfigured as exc:
        return None, str(exc)
