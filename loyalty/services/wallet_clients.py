"""HTTP clients of the two wallets (requests): Google's loyaltyObject PATCH, Apple's pass push.

Both are safe to share between threads: each thread gets its own requests.Session
(sessions are not thread-safe), and errors are mapped to transient (retry) or
permanent (do not retry). Tokens go in headers only, never in messages or logs.
"""

import threading
from dataclasses import dataclass

import requests

from loyalty.conf import loyalty_settings
from loyalty.exceptions import PermanentWalletError, TransientWalletError


@dataclass(frozen=True, kw_only=True)
class CardSnapshot:
    """What a wallet pass shows, read once before the concurrent calls start."""

    card_id: int
    number: str
    points_balance: int
    stamp_count: int
    google_object_id: str
    apple_serial_number: str


class _HttpClient:
    def __init__(self, *, base_url: str, token: str, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_seconds = timeout_seconds
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, method: str, url: str, payload: dict) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = self._session().request(
                method, url, json=payload, headers=headers, timeout=self.timeout_seconds
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientWalletError(f"{method} {url}: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientWalletError(f"{method} {url}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentWalletError(f"{method} {url}: HTTP {response.status_code}")


class GoogleWalletClient(_HttpClient):
    """PATCH walletobjects/v1/loyaltyObject/<id> with the balance and stamps."""

    def push(self, card: CardSnapshot) -> None:
        self._send(
            "PATCH",
            f"{self.base_url}/walletobjects/v1/loyaltyObject/{card.google_object_id}",
            {
                "loyaltyPoints": {"label": "Points", "balance": {"int": card.points_balance}},
                "secondaryLoyaltyPoints": {"label": "Stamps", "balance": {"int": card.stamp_count}},
            },
        )


class AppleWalletClient(_HttpClient):
    """POST passes/v1/push/<serial>: the pass service updates the pass and pushes to devices."""

    def push(self, card: CardSnapshot) -> None:
        self._send(
            "POST",
            f"{self.base_url}/passes/v1/push/{card.apple_serial_number}",
            {
                "serialNumber": card.apple_serial_number,
                "points": card.points_balance,
                "stamps": card.stamp_count,
            },
        )


@dataclass(frozen=True, kw_only=True)
class WalletClients:
    google: GoogleWalletClient
    apple: AppleWalletClient


def wallet_clients() -> WalletClients:
    """Clients from settings/environment only (endpoints and tokens: see loyalty.conf)."""
    timeout = loyalty_settings.WALLET_TIMEOUT_SECONDS
    return WalletClients(
        google=GoogleWalletClient(
            base_url=loyalty_settings.GOOGLE_WALLET_URL,
            token=loyalty_settings.GOOGLE_WALLET_TOKEN,
            timeout_seconds=timeout,
        ),
        apple=AppleWalletClient(
            base_url=loyalty_settings.APPLE_WALLET_URL,
            token=loyalty_settings.APPLE_WALLET_TOKEN,
            timeout_seconds=timeout,
        ),
    )
