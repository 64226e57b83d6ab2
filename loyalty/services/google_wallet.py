"""Google Wallet: PATCH a card's loyaltyObject with a service account's OAuth token.

google-auth mints, caches and refreshes the access token; requests go through its
AuthorizedSession, one per thread (requests sessions are not thread-safe), all sharing
the one credentials object. Tokens only travel in headers, never in a message or log.
"""

import json
import threading
from typing import Any

import google.auth.exceptions
import requests
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account

from loyalty.conf import loyalty_settings, read_setting_file
from loyalty.exceptions import (
    PermanentWalletError,
    TransientWalletError,
    WalletCredentialsError,
    WalletError,
    WalletNotConfigured,
)
from loyalty.services.wallet_state import CardSnapshot

SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
#: Reasons of a 403 that is Google's quota or rate limit, not a refusal of our credentials
#: (Google's APIs answer quota errors with 403 or 429; these "retry using exponential
#: back-off"): retried like a 429, and never stop the wallet as "credentials refused".
QUOTA_REASONS = {
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
    "limitExceeded",
    "RATE_LIMIT_EXCEEDED",
}
#: A sync of a card: the object was updated, or (404: deleted on Google's side) inserted again.
SYNCED, RECREATED = "synced", "recreated"


def _service_account_info() -> dict[str, Any]:
    """The key's JSON (file or content); WalletNotConfigured names what is missing or bad."""
    if loyalty_settings.GOOGLE_SERVICE_ACCOUNT_JSON:
        source, text = (
            "LOYALTY_GOOGLE_SERVICE_ACCOUNT_JSON",
            loyalty_settings.GOOGLE_SERVICE_ACCOUNT_JSON,
        )
    elif loyalty_settings.GOOGLE_SERVICE_ACCOUNT_FILE:
        source = "LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE"
        text = read_setting_file("GOOGLE_SERVICE_ACCOUNT_FILE")
    else:
        raise WalletNotConfigured(
            "not configured (set LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE or _JSON)"
        )
    try:
        info = json.loads(text)
    except ValueError:
        raise WalletNotConfigured(f"{source} is not JSON") from None
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise WalletNotConfigured(f"{source} lacks {', '.join(missing)} (a service account key?)")
    return info


class GoogleWalletClient:
    """Thread-safe client of walletobjects/v1/loyaltyObject, built from the settings."""

    def __init__(self) -> None:
        info = _service_account_info()
        self.base_url = str(loyalty_settings.GOOGLE_WALLET_URL).rstrip("/")
        self.timeout_seconds = float(loyalty_settings.WALLET_TIMEOUT_SECONDS)
        try:
            self.credentials = service_account.Credentials.from_service_account_info(
                info, scopes=[SCOPE]
            )
        except (ValueError, TypeError) as exc:
            raise WalletNotConfigured(f"service account key unusable: {exc}") from None
        self.client_email = info["client_email"]
        self._local = threading.local()
        self._refresh_lock = threading.Lock()

    def _session(self) -> AuthorizedSession:
        session = getattr(self._local, "session", None)
        if session is None:
            # On 401 the token is refreshed and the call tried once more, then it is ours.
            session = self._local.session = AuthorizedSession(
                self.credentials, max_refresh_attempts=1
            )
        return session

    def check_credentials(self, *, force: bool = False) -> None:
        """Mint (or reuse) an access token; WalletCredentialsError if the token endpoint refuses."""
        with self._refresh_lock:  # one token request, not one per thread
            if self.credentials.valid and not force:
                return
            try:
                self.credentials.refresh(Request(requests.Session()))
            except google.auth.exceptions.RefreshError as exc:
                raise _refresh_error(exc) from None
            except google.auth.exceptions.TransportError as exc:
                raise TransientWalletError(f"token endpoint unreachable: {_short(exc)}") from None

    def check_access(self, *, object_id: str, force: bool = False) -> None:
        """Mint (or reuse, unless `force`) a token, then read one object of ours: a token
        can be minted for a key that walletobjects refuses (401 revoked, 403 not a user of
        the issuer), so "accepted" means walletobjects said so. 404 is fine (not ours to
        find, but the credentials were accepted)."""
        self.check_credentials(force=force)
        if object_id:
            url = f"{self.base_url}/walletobjects/v1/loyaltyObject/{object_id}"
            self._send("GET", url, None)

    def push(self, card: CardSnapshot) -> str:
        """Update the card's object; insert it again if Google deleted it. SYNCED or RECREATED."""
        url = f"{self.base_url}/walletobjects/v1/loyaltyObject"
        self.check_credentials()
        response = self._send("PATCH", f"{url}/{card.google_object_id}", _points(card))
        if response.status_code != 404:
            return SYNCED
        if not card.google_class_id:
            raise PermanentWalletError(
                f"object {card.google_object_id} is gone and the card's program has no "
                "google_wallet_class_id to re-create it in"
            )
        body = {
            "id": card.google_object_id,
            "classId": card.google_class_id,
            "accountId": card.number,
            "accountName": card.number,
            "barcode": {"type": "QR_CODE", "value": card.number},
            **_points(card),
        }
        response = self._send("POST", url, body)
        if response.status_code == 409:  # inserted meanwhile (a second delivery): update it
            response = self._send("PATCH", f"{url}/{card.google_object_id}", _points(card))
        if response.status_code == 404:
            raise PermanentWalletError(f"class {card.google_class_id} not found: cannot re-create")
        return RECREATED

    def _send(self, method: str, url: str, payload: dict | None) -> requests.Response:
        """The answer if 2xx or 404 (the caller decides); errors mapped for retry or stop."""
        try:
            response = self._session().request(
                method, url, json=payload, timeout=self.timeout_seconds
            )
        except google.auth.exceptions.RefreshError as exc:
            raise _refresh_error(exc) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientWalletError(f"{method} {url}: {type(exc).__name__}") from None
        except google.auth.exceptions.TransportError as exc:
            raise TransientWalletError(f"{method} {url}: {_short(exc)}") from None
        status = response.status_code
        if status == 403 and _quota_reason(response):
            raise TransientWalletError(f"{method} {url}: HTTP 403 {_quota_reason(response)}")
        if status in (401, 403):  # AuthorizedSession already refreshed the token once on 401
            raise WalletCredentialsError(
                f"HTTP {status} from walletobjects for {self.client_email} "
                "(key revoked, or the account is not a user of the issuer?)"
            )
        if status == 429 or status >= 500:
            raise TransientWalletError(f"{method} {url}: HTTP {status}")
        if status >= 400 and status not in (404, 409):
            raise PermanentWalletError(f"{method} {url}: HTTP {status}")
        return response


def _points(card: CardSnapshot) -> dict[str, Any]:
    """What the object shows of the card; a deactivated card's object is INACTIVE ("inactive
    and hidden from view"; Google Wallet moves it to "Expired passes")."""
    return {
        "state": "ACTIVE" if card.is_active else "INACTIVE",
        "loyaltyPoints": {"label": "Points", "balance": {"int": card.points_balance}},
        "secondaryLoyaltyPoints": {"label": "Stamps", "balance": {"int": card.stamp_count}},
    }


def _quota_reason(response: requests.Response) -> str:
    """The quota or rate-limit reason of a Google error body ("" if it is none of those)."""
    try:
        error = response.json().get("error", {})
        reasons = [str(e.get("reason", "")) for e in error.get("errors", [])]
        reasons.append(str(error.get("status", "")))
    except (ValueError, AttributeError, TypeError):
        return ""
    if "RESOURCE_EXHAUSTED" in reasons:
        return "RESOURCE_EXHAUSTED"
    return next((r for r in reasons if r in QUOTA_REASONS), "")


def _refresh_error(exc: google.auth.exceptions.RefreshError) -> WalletError:
    """A refused token request: retried when Google says it may pass, else the credentials."""
    if getattr(exc, "retryable", False):
        return TransientWalletError(f"token endpoint: {_short(exc)}")
    return WalletCredentialsError(f"token request refused: {_short(exc)}")


def _short(exc: Exception) -> str:
    """First line of an auth error, cut: google-auth messages quote the token endpoint's body."""
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
