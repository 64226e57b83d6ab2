"""Apple Wallet pass updates: an empty APNs push, over HTTP/2, to every registered device.

Token-based provider authentication: an ES256 JWT signed with the team's `.p8` key
(`kid` = key id, `iss` = team id), reused for 50 minutes (Apple refuses tokens older
than an hour and rate-limits new ones). One httpx client with HTTP/2 is shared by all
threads: their pushes are streams multiplexed on one TLS connection, as Apple asks.
The device then calls our PassKit web service for the changed serials and the pass.
"""

import asyncio
import concurrent.futures
import ssl
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx
from google.auth import jwt
from google.auth.crypt import es256

from loyalty.exceptions import (
    PermanentWalletError,
    TransientWalletError,
    UnconfirmedDeviceToken,
    WalletCredentialsError,
    WalletNotConfigured,
)

#: Provider tokens are renewed after this long (Apple: at most one hour, at least 20 minutes).
TOKEN_MAX_AGE_SECONDS = 50 * 60
#: Push outcomes: delivered to APNs, or the device is gone (remove its registration).
SENT, GONE = "sent", "gone"
_CREDENTIAL_REASONS = {"InvalidProviderToken", "MissingProviderToken", "BadCertificate"}


class ApnsClient:
    """Thread-safe APNs client for one topic (the pass type identifier)."""

    def __init__(
        self,
        *,
        base_url: str,
        team_id: str,
        key_id: str,
        private_key_pem: str,
        topic: str,
        timeout_seconds: float,
        ca_file: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.team_id, self.key_id, self.topic = team_id, key_id, topic
        try:
            self._signer = es256.ES256Signer.from_string(private_key_pem, key_id=key_id)
        except (ValueError, TypeError) as exc:
            raise WalletNotConfigured(f"APNs key unusable (an ES256 .p8 key?): {exc}") from None
        context = ssl.create_default_context()
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
        self._timeout_seconds = timeout_seconds
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="apns-http2", daemon=True).start()

        async def make_client() -> httpx.AsyncClient:
            return httpx.AsyncClient(
                http1=False, http2=True, verify=context, timeout=timeout_seconds
            )

        self._http = self._run(make_client())
        self._lock = threading.Lock()
        self._token = ""
        self._token_issued = 0.0
        #: Pushes APNs accepted from this client (proves key, topic and environment).
        self.delivered = 0

    def provider_token(self, *, renew: bool = False) -> str:
        with self._lock:
            now = time.time()
            if renew or not self._token or now - self._token_issued > TOKEN_MAX_AGE_SECONDS:
                payload = {"iss": self.team_id, "iat": int(now)}
                self._token = jwt.encode(self._signer, payload).decode()
                self._token_issued = now
            return self._token

    def push(self, device_token: str) -> str:
        """Tell one device its pass changed: SENT, or GONE when APNs says it is unregistered
        (410), or that the token is bad (400 BadDeviceToken) while it has accepted other
        pushes of ours: a token from another APNs environment or a garbled registration.
        Without an accepted push yet, BadDeviceToken may be our APNS_URL that is wrong for
        every device: then it is an error, and no registration is removed."""
        response = self._post(device_token, self.provider_token())
        reason = _reason(response)
        if response.status_code == 403 and reason == "ExpiredProviderToken":
            response = self._post(device_token, self.provider_token(renew=True))
            reason = _reason(response)
        status = response.status_code
        if status == 200:
            with self._lock:
                self.delivered += 1
            return SENT
        if status == 410 or (reason == "BadDeviceToken" and self.delivered):
            return GONE
        if status == 403 and reason in _CREDENTIAL_REASONS | {"ExpiredProviderToken"}:
            raise WalletCredentialsError(
                f"APNs refused the provider token ({reason}): check LOYALTY_APPLE_APNS_KEY_FILE, "
                "LOYALTY_APPLE_APNS_KEY_ID and LOYALTY_APPLE_TEAM_ID"
            )
        if status == 400 and reason in {"TopicDisallowed", "DeviceTokenNotForTopic"}:
            raise WalletCredentialsError(
                f"APNs: {reason} for topic {self.topic} (LOYALTY_APPLE_PASS_TYPE_ID)"
            )
        if status == 429 or status >= 500:
            raise TransientWalletError(f"APNs HTTP {status} {reason}".rstrip())
        if reason == "BadDeviceToken":
            raise UnconfirmedDeviceToken(f"APNs HTTP {status} {reason} (no push accepted yet)")
        raise PermanentWalletError(f"APNs HTTP {status} {reason}".rstrip())

    def check_credentials(self, *, force: bool = False) -> None:
        """A push to an all-zero device token (always: `force` is for Google's cached token);
        APNs checks the provider token first.

        400 BadDeviceToken means the key and topic were accepted; 403 that they were not.
        """
        try:
            self.push("0" * 64)
        except UnconfirmedDeviceToken:
            return  # the key and topic were accepted
        except PermanentWalletError as exc:
            if isinstance(exc, WalletCredentialsError):
                raise
            if "BadDeviceToken" not in str(exc):
                raise

    def close(self) -> None:
        try:
            self._run(self._http.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run on the client's event loop; the calling thread waits for the result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self._timeout_seconds * 2 + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TransientWalletError("APNs: no answer") from None

    def _post(self, device_token: str, provider_token: str) -> httpx.Response:
        # PassKit's update notification: the pass type as topic, an empty JSON payload.
        headers = {"authorization": f"bearer {provider_token}", "apns-topic": self.topic}
        try:
            return self._run(
                self._http.post(
                    f"{self.base_url}/3/device/{device_token}", content=b"{}", headers=headers
                )
            )
        except httpx.TimeoutException as exc:
            raise TransientWalletError(f"APNs: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise TransientWalletError(f"APNs unreachable: {type(exc).__name__}") from None


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json().get("reason", ""))
    except ValueError:
        return ""


def read_key_file(path: str, *, setting: str) -> str:
    if not path:
        raise WalletNotConfigured(f"not configured (set LOYALTY_{setting})")
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise WalletNotConfigured(
            f"LOYALTY_{setting}: cannot read {path}: {exc.strerror}"
        ) from None
