"""Settings of the bibliotheca app (`BIBLIOTHECA_*`), read lazily (jobs.conf.AppSettings).
The API address settings may come from the environment, so that the qclusters of tests,
the demo and benchmarks can point at a local simulator."""

from datetime import UTC, datetime

from django.conf import settings

from jobs.conf import TRUE_WORDS, AppSettings, Setting

#: Where a first import starts: the partner API's first day (Palace Manager's
#: DEFAULT_PURCHASE_RECORD_START_TIME).
DEFAULT_START = datetime(2014, 1, 1, tzinfo=UTC)
#: The API's maximum page size.
PAGE_SIZE = 50
#: Timestamp.service of the purchase-record import.
PURCHASE_RECORD_SERVICE = "bibliotheca.purchase_records"


class BibliothecaSettings(AppSettings):
    prefix = "BIBLIOTHECA"
    settings = {
        #: Per-request timeout of a partner API call.
        "REQUEST_TIMEOUT_SECONDS": Setting(30.0),
        #: Tries of one request before a transient failure fails the hop (in-place retry).
        "REQUEST_ATTEMPTS": Setting(3),
        #: First in-place backoff (doubled per try, with jitter).
        "RETRY_WAIT_SECONDS": Setting(0.5, zero_ok=True),
        #: A 429's Retry-After up to this long is waited out in place (the hop sleeps).
        "RETRY_AFTER_MAX_SECONDS": Setting(30.0, zero_ok=True),
        #: Up to this long, the chain re-queues its hop for then (no request before);
        #: longer stops the chain (re-run later).
        "RETRY_AFTER_LIMIT_SECONDS": Setting(15 * 60.0, zero_ok=True),
        #: Each chain re-reads this many minutes before its checkpoint (purchases the
        #: partner lists late, or a partner clock behind ours).
        "OVERLAP_MINUTES": Setting(60, zero_ok=True),
        #: Windows one chain may record as gaps; the next failing one stops the chain (the
        #: API looks down rather than one day bad).
        "GAPS_PER_CHAIN": Setting(3, zero_ok=True),
        #: A collection whose checkpoint has not moved for this long is a health warning.
        "STALE_AFTER_HOURS": Setting(48),
        #: Day windows whose MARC pages are fetched at once (items batches go alongside).
        "CONCURRENT_REQUESTS": Setting(4),
        #: Work one hop does before it queues the next (seconds).
        "HOP_TIME_BUDGET_SECONDS": Setting(20.0),
        #: Editions whose metadata is older than this are fetched again.
        "METADATA_REFRESH_DAYS": Setting(30, zero_ok=True),
        #: Edition media ("ebook", "audiobook") whose records are not imported.
        "SKIP_MEDIA": Setting(()),
        #: Hosts a collection's base URL may name (the vendor's API by default).
        "ALLOWED_HOSTS": Setting(("partner.yourcloudlibrary.com",), env=True),
        #: Plain http:// addresses (a local simulator); unset: with DEBUG.
        "ALLOW_HTTP": Setting("", env=True),
    }

    # Values with a bound or a shape, derived from the table above.

    @property
    def REQUEST_ATTEMPTS(self) -> int:
        return max(1, int(self.value("REQUEST_ATTEMPTS")))

    @property
    def OVERLAP_MINUTES(self) -> int:
        return max(0, int(self.value("OVERLAP_MINUTES")))

    @property
    def CONCURRENT_REQUESTS(self) -> int:
        return max(1, int(self.value("CONCURRENT_REQUESTS")))

    @property
    def SKIP_MEDIA(self) -> frozenset[str]:
        return frozenset(str(m).lower() for m in self.value("SKIP_MEDIA"))

    @property
    def ALLOWED_HOSTS(self) -> frozenset[str]:
        hosts = self.value("ALLOWED_HOSTS")  # a Django setting may be a list or "a,b"
        hosts = hosts.split(",") if isinstance(hosts, str) else hosts
        return frozenset(h.strip().lower() for h in hosts if h.strip())

    @property
    def ALLOW_HTTP(self) -> bool:
        """Never with PRODUCTION=1, whatever it says; unset: with DEBUG (tests, demo and
        benchmarks set it)."""
        if getattr(settings, "PRODUCTION", False):
            return False
        value = self.value("ALLOW_HTTP")
        return bool(settings.DEBUG) if value == "" else str(value).strip().lower() in TRUE_WORDS


bibliotheca_settings = BibliothecaSettings()
