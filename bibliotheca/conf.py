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
    def HOP_TIME_BUDGET_SECONDS(self) -> float:
        return float(self._get("HOP_TIME_BUDGET_SECONDS", 20))

    @property
    def LOCK_LEASE_SECONDS(self) -> int:
        return int(self._get("LOCK_LEASE_SECONDS", 2 * 60 * 60))

    @property
    def METADATA_REFRESH_DAYS(self) -> int:
        return int(self._get("METADATA_REFRESH_DAYS", 30))

    @property
    def WRITER_PROCESS(self) -> bool:
        """A hop writes its pages from a forked child (False: from threads of its own)."""
        return bool(self._get("WRITER_PROCESS", True))


bibliotheca_settings = _Settings()
