"""Apple Wallet pass updates: an empty APNs push, over HTTP/2, to every registered device.

What Apple asks for, and why these headers and this authentication: docs/loyalty.md, "APNs:
what Apple asks for". One httpx HTTP/2 client is shared by all threads: their pushes are
streams multiplexed on one TLS connection, run on the client's own event-loop thread.
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

from loyalty.conf import loyalty_settings, read_setting_file
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
#: LOYALTY_APPLE_APNS_AUTH values.
CERTIFICATE, TOKEN = "certificate", "token"
_CREDENTIAL_REASONS = {
    "InvalidProviderToken",
    "MissingProviderToken",
    "BadCertificate",
    "BadCertificateEnvironment",
    "Forbidden",
}


#: 400 reasons about one device's token (Apple: "Don't retry"): once APNs accepted a push of
#: ours (so our topic and environment are right), that registration is removed; a token of
#: another topic is one device's (anyone holding a pass can register any token), never a
#: reason to stop every customer's pushes.
_DEVICE_REASONS = {"BadDeviceToken", "DeviceTokenNotForTopic"}


class ApnsClient:
    """Thread-safe APNs client for the pass type identifier's topic, built from the settings
    (WalletNotConfigured: what is missing or unusable)."""

    def __init__(self) -> None:
        self.auth = str(loyalty_settings.APPLE_APNS_AUTH)
        if self.auth not in (CERTIFICATE, TOKEN):
            raise WalletNotConfigured(
                f"LOYALTY_APPLE_APNS_AUTH is {self.auth[:20]!r}: {CERTIFICATE} or {TOKEN}"
            )
        token_names = ("APPLE_TEAM_ID", "APPLE_APNS_KEY_ID") if self.auth == TOKEN else ()
        for name in ("APPLE_PASS_TYPE_ID", *token_names):
            if not str(getattr(loyalty_settings, name)):
                raise WalletNotConfigured(f"not configured (set LOYALTY_{name})")
        self.base_url = str(loyalty_settings.APPLE_APNS_URL).rstrip("/")
        self.topic = loyalty_settings.APPLE_PASS_TYPE_ID
        self._team_id = loyalty_settings.APPLE_TEAM_ID
        self._signer = None
        if self.auth == TOKEN:
            key_pem = read_setting_file("APPLE_APNS_KEY_FILE")
            try:
                self._signer = es256.ES256Signer.from_string(
                    key_pem, key_id=loyalty_settings.APPLE_APNS_KEY_ID
                )
            except (ValueError, TypeError) as exc:
                raise WalletNotConfigured(f"APNs key unusable (an ES256 .p8 key?): {exc}") from None
        context = ssl.create_default_context()
        if loyalty_settings.APPLE_APNS_CA_FILE:
            context.load_verify_locations(cafile=loyalty_settings.APPLE_APNS_CA_FILE)
        if self.auth == CERTIFICATE:
            _load_client_certificate(context)
        self._timeout_seconds = timeout_seconds = float(loyalty_settings.WALLET_TIMEOUT_SECONDS)
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
        #: Pushes APNs accepted from this client (proves credentials, topic and environment).
        self.delivered = 0

    def provider_token(self, *, refused: str = "") -> str:
        """Token auth only: the current provider token (renewed after 50 minutes, or when it
        is the `refused` one APNs called expired). Pushes refused at once with one token
        renew it once: APNs answers more updates with TooManyProviderTokenUpdates."""
        assert self._signer is not None
        with self._lock:
            now = time.time()
            expired = now - self._token_issued > TOKEN_MAX_AGE_SECONDS
            if not self._token or expired or (refused and refused == self._token):
                payload = {"iss": self._team_id, "iat": int(now)}
                self._token = jwt.encode(self._signer, payload).decode()
                self._token_issued = now
            return self._token

    def push(self, device_token: str) -> str:
        """Tell one device its pass changed: SENT, or GONE when APNs says it is unregistered
        (410), or that the token is bad or of another topic (400 BadDeviceToken,
        DeviceTokenNotForTopic) while it has accepted other pushes of ours: a token from
        another APNs environment or app, or a garbled registration. Without an accepted
        push yet, they may be our APNS_URL or topic, wrong for every device: then it is an
        error of the card, and no registration is removed."""
        token = self.provider_token() if self.auth == TOKEN else ""
        response = self._post(device_token, token)
        reason = _reason(response)
        if token and response.status_code == 403 and reason == "ExpiredProviderToken":
            response = self._post(device_token, self.provider_token(refused=token))
            reason = _reason(response)
        status = response.status_code
        if status == 200:
            with self._lock:
                self.delivered += 1
            return SENT
        if status == 410 or (reason in _DEVICE_REASONS and self.delivered):
            return GONE
        if status == 403 and reason in _CREDENTIAL_REASONS | {"ExpiredProviderToken"}:
            raise WalletCredentialsError(f"APNs refused {self._credentials()} ({reason})")
        if status == 400 and reason in {"TopicDisallowed", "BadTopic"}:
            hint = (
                ": APNs may refuse provider tokens for pass topics; use the pass type "
                "certificate (LOYALTY_APPLE_APNS_AUTH=certificate)"
                if self.auth == TOKEN
                else " (LOYALTY_APPLE_PASS_TYPE_ID and the certificate's pass type ID)"
            )
            raise WalletCredentialsError(f"APNs: {reason} for topic {self.topic}{hint}")
        if status == 429 or status >= 500:
            raise TransientWalletError(f"APNs HTTP {status} {reason}".rstrip())
        if reason in _DEVICE_REASONS:
            raise UnconfirmedDeviceToken(f"APNs HTTP {status} {reason} (no push accepted yet)")
        raise PermanentWalletError(f"APNs HTTP {status} {reason}".rstrip())

    def check_credentials(self) -> None:
        """A push to an all-zero device token: APNs checks the certificate or provider token
        and the topic first, so 400 BadDeviceToken means they were accepted."""
        try:
            self.push("0" * 64)
        except UnconfirmedDeviceToken:
            pass

    def close(self) -> None:
        try:
            self._run(self._http.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _credentials(self) -> str:
        if self.auth == CERTIFICATE:
            return (
                "the pass type certificate: check LOYALTY_APPLE_PASS_CERT_FILE, "
                "LOYALTY_APPLE_PASS_KEY_FILE (revoked or expired?) and LOYALTY_APPLE_APNS_URL "
                "(pass pushes go to production)"
            )
        return (
            "the provider token: check LOYALTY_APPLE_APNS_KEY_FILE, "
            "LOYALTY_APPLE_APNS_KEY_ID and LOYALTY_APPLE_TEAM_ID"
        )

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run on the client's event loop; the calling thread waits for the result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self._timeout_seconds * 2 + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TransientWalletError("APNs: no answer") from None

    def _post(self, device_token: str, provider_token: str) -> httpx.Response:
        # An empty payload: a background push, which Apple allows only at priority 5.
        headers = {"apns-topic": self.topic, "apns-push-type": "background", "apns-priority": "5"}
        if provider_token:
            headers["authorization"] = f"bearer {provider_token}"
        try:
            return self._run(
                self._http.post(
                    f"{self.base_url}/3/device/{device_token}",
                    content=b"{}",
                    headers=headers,
                )
            )
        except httpx.TimeoutException as exc:
            raise TransientWalletError(f"APNs: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            tls = _tls_error(exc) if self.auth == CERTIFICATE else None
            if tls is not None and "ALERT" in str(tls.reason or ""):
                raise WalletCredentialsError(
                    f"APNs refused {self._credentials()} in the TLS handshake ({tls.reason})"
                ) from None
            if tls is not None:  # a hang-up in the handshake: the certificate, or the network
                raise TransientWalletError(
                    f"APNs closed the TLS handshake ({tls.reason}): pass type certificate "
                    "not trusted? (LOYALTY_APPLE_PASS_CERT_FILE)"
                ) from None
            raise TransientWalletError(f"APNs unreachable: {type(exc).__name__}") from None


def _load_client_certificate(context: ssl.SSLContext) -> None:
    """The pass type certificate as TLS client certificate (the Wallet guide: "the same
    certificate and private key ... as for signing passes"); WalletNotConfigured names the
    setting (never the key or its password)."""
    cert_file = str(loyalty_settings.APPLE_PASS_CERT_FILE)
    key_file = str(loyalty_settings.APPLE_PASS_KEY_FILE)
    for path, setting in ((cert_file, "APPLE_PASS_CERT_FILE"), (key_file, "APPLE_PASS_KEY_FILE")):
        if not path:
            raise WalletNotConfigured(f"not configured (set LOYALTY_{setting})")
        if not Path(path).is_file():
            raise WalletNotConfigured(f"LOYALTY_{setting}: cannot read {path}")
    try:
        context.load_cert_chain(
            cert_file, key_file, password=loyalty_settings.APPLE_PASS_KEY_PASSWORD or None
        )
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise WalletNotConfigured(
            f"pass type certificate or key unusable for APNs ({reason}): check "
            "LOYALTY_APPLE_PASS_CERT_FILE, LOYALTY_APPLE_PASS_KEY_FILE, _PASSWORD"
        ) from None


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a transport error (its reason names an alert APNs sent, such as
    TLSV1_ALERT_UNKNOWN_CA, or an end of stream in the handshake), if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json().get("reason", ""))
    except ValueError:
        return ""
