"""Settings of the bibliotheca app, read lazily (BIBLIOTHECA_* in Django settings)."""

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

#: Where a first import starts (the seed's DEFAULT_PURCHASE_RECORD_START_TIME).
DEFAULT_START = datetime(2014, 1, 1, tzinfo=UTC)
#: The API's maximum page size.
PAGE_SIZE = 50
#: Timestamp.service of the purchase-record import.
PURCHASE_RECORD_SERVICE = "bibliotheca.purchase_records"
#: The vendor's API hosts (bibliotheca-api.md): where a collection may point by default.
VENDOR_API_HOSTS = ("partner.yourcloudlibrary.com",)


@dataclass(frozen=True)
class _Settings:
    def _get(self, name: str, default):
        return getattr(settings, f"BIBLIOTHECA_{name}", default)

    @property
    def REQUEST_TIMEOUT_SECONDS(self) -> float:
        return float(self._get("REQUEST_TIMEOUT_SECONDS", 30))

    @property
    def REQUEST_ATTEMPTS(self) -> int:
        """Tries of one request before a transient failure fails the hop (in-place retry)."""
        return max(1, int(self._get("REQUEST_ATTEMPTS", 3)))

    @property
    def RETRY_WAIT_SECONDS(self) -> float:
        """First in-place backoff (doubled per try, with jitter)."""
        return float(self._get("RETRY_WAIT_SECONDS", 0.5))

    @property
    def RETRY_AFTER_MAX_SECONDS(self) -> float:
        """A 429 asking to wait longer than this fails the hop (the chain retries later)."""
        return float(self._get("RETRY_AFTER_MAX_SECONDS", 30))

    @property
    def CONCURRENT_REQUESTS(self) -> int:
        """Day windows whose MARC pages are fetched at once (items batches go alongside)."""
        return max(1, int(self._get("CONCURRENT_REQUESTS", 4)))

    @property
    def HOP_TIME_BUDGET_SECONDS(self) -> float:
        return float(self._get("HOP_TIME_BUDGET_SECONDS", 20))

    @property
    def LOCK_LEASE_SECONDS(self) -> int:
        return int(self._get("LOCK_LEASE_SECONDS", 2 * 60 * 60))

    @property
    def METADATA_REFRESH_DAYS(self) -> int:
        return int(self._get("METADATA_REFRESH_DAYS", 30))

    @property
    def SKIP_MEDIA(self) -> frozenset[str]:
        """Edition media ("ebook", "audiobook") whose records are not imported."""
        return frozenset(str(m).lower() for m in self._get("SKIP_MEDIA", ()))

    # The API address allow-list: Django settings first, else the environment (so the
    # qcluster processes of tests and the demo can be pointed at a local simulator).

    def _get_or_env(self, name: str, default):
        value = self._get(name, None)
        if value is None:
            value = os.environ.get(f"BIBLIOTHECA_{name}")
        return default if value is None or value == "" else value

    @property
    def ALLOWED_HOSTS(self) -> frozenset[str]:
        """Hosts a collection's base URL may name (the vendor's by default)."""
        value = self._get_or_env("ALLOWED_HOSTS", VENDOR_API_HOSTS)
        if isinstance(value, str):
            value = value.split(",")
        return frozenset(h.strip().lower() for h in value if h.strip())

    @property
    def ALLOW_HTTP(self) -> bool:
        """Plain http:// addresses (a local simulator): with DEBUG unless set (tests, demo,
        benchmarks set it); never with PRODUCTION=1, whatever it says."""
        if getattr(settings, "PRODUCTION", False):
            return False
        value = self._get_or_env("ALLOW_HTTP", settings.DEBUG)
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)


bibliotheca_settings = _Settings()
