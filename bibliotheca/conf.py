"""Settings of the bibliotheca app, read lazily (BIBLIOTHECA_* in Django settings)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

#: Where a first import starts (the seed's DEFAULT_PURCHASE_RECORD_START_TIME).
DEFAULT_START = datetime(2014, 1, 1, tzinfo=UTC)
#: The API's maximum page size.
PAGE_SIZE = 50
#: Timestamp.service of the purchase-record import.
PURCHASE_RECORD_SERVICE = "bibliotheca.purchase_records"


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


bibliotheca_settings = _Settings()
