"""`manage.py demo --only bibliotheca`: a few months of purchases through the real clusters."""

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import Collection, Edition, LicensePool, Timestamp
from devkit.bibliotheca_simulator import Catalogue, Fault, start_simulator
from devkit.waiting import wait_until
from jobs.models import JobRun
from jobs.runner import enqueue_job

CHAIN = "bibliotheca.import_purchase_records_by_collection"
DEMO_DAYS = 90
DEMO_LATENCY_MS = 100


def cluster_env(*, out: Callable[[str], None]) -> dict[str, str]:
    """Let the clusters reach the local simulator (loopback, plain http): the address
    check allows only the vendor's https hosts otherwise."""
    env = {"BIBLIOTHECA_ALLOWED_HOSTS": "127.0.0.1", "BIBLIOTHECA_ALLOW_HTTP": "1"}
    os.environ.update(env)
    return env


def run_demo(*, out: Callable[[str], None]) -> None:
    today = timezone.now().date()
    catalogue = Catalogue(
        start_date=today - timedelta(days=DEMO_DAYS - 1),
        days=DEMO_DAYS,
        records_per_day=40,
        no_001_every=97,
        two_001_every=101,
    )
    # Answers take 50-150 ms, as the partner API's do (the chain reads 4 windows at once).
    server = start_simulator(
        catalogue,
        library_id="demo",
        account_id="demo",
        account_key="k",
        latency_ms=DEMO_LATENCY_MS,
        jitter_ms=DEMO_LATENCY_MS / 2,
    )
    try:
        collection = _demo_collection(catalogue, server.base_url)
        # A terminal fault mid-chain (error XML on the 40th page): the chain stops with its
        # checkpoint intact, and the next run resumes there. (A transient 5xx would be
        # retried after 0-60 s of backoff: see the tests; too slow for a demo.)
        server.state.faults.append(Fault(kind="error_xml", endpoint="marc", after=39))
        out(
            f"simulator on {server.base_url}: {catalogue.total_records} purchases over "
            f"{DEMO_DAYS} days (some records with no or two 001), answers in "
            f"{DEMO_LATENCY_MS} ms +- {DEMO_LATENCY_MS // 2}, error XML on page 40"
        )
        first = _run_chain(collection, out)
        ts = Timestamp.objects.get(service=PURCHASE_RECORD_SERVICE, collection=collection)
        out(f"chain stopped: {ts.exception}")
        out(f"checkpoint kept at {ts.finish.isoformat()}; queueing the import again")
        _run_chain(collection, out)
        chain = JobRun.objects.filter(job__startswith="bibliotheca.", id__gte=first)
        _wait_for_chain(chain)
        _summary(collection, chain, server, out)
    finally:
        server.stop()


def _demo_collection(catalogue: Catalogue, base_url: str) -> Collection:
    """The demo collection on the simulator, last imported at the catalogue's first day."""
    collection, _ = Collection.objects.update_or_create(
        name="Demo cloudLibrary",
        defaults={
            "library_id": "demo",
            "account_id": "demo",
            "account_key": "k",
            "base_url": base_url,
            "enabled": True,
        },
    )
    start = datetime.combine(catalogue.start_date, datetime.min.time(), tzinfo=UTC)
    # The collection was last imported DEMO_DAYS ago: the chain covers the months since.
    Timestamp.objects.update_or_create(
        service=PURCHASE_RECORD_SERVICE, collection=collection, defaults={"finish": start}
    )
    return collection


def _wait_for_chain(chain: QuerySet[JobRun]) -> None:
    """Until the chain is done or stopped for good, and none of its runs is still queued."""

    def finished() -> bool:
        done = chain.filter(job=CHAIN, result__done=True).exists()
        stopped = chain.filter(job=CHAIN, status="failed", result__permanent=True).exclude(
            result__has_key="retry_run_id"
        )
        return (done or stopped.exists()) and not chain.filter(
            status__in=["queued", "running"]
        ).exists()

    wait_until(finished, timeout_seconds=150, poll_seconds=0.5, what="the purchase chain")


def _summary(collection: Collection, chain, server, out: Callable[[str], None]) -> None:
    """What the chains did: hops, pages, records, applies, pools and editions."""
    hops = chain.filter(job=CHAIN)
    results = [r for r in hops.values_list("result", flat=True) if r and "pages" in r]
    totals = {k: sum(r[k] for r in results) for k in ("pages", "records")}
    ts = Timestamp.objects.get(service=PURCHASE_RECORD_SERVICE, collection=collection)
    out(
        f"hops: {hops.count()} ({hops.filter(status='failed').count()} failed), pages: "
        f"{totals['pages']}, records: {totals['records']}, applies: {chain.filter(job='bibliotheca.apply_bibliographic').count()}"
    )
    out(f"progress: {ts.progress}")
    out(f"Timestamp.finish: {ts.finish.isoformat()}  achievements: {ts.achievements}")
    out(
        f"pools: {LicensePool.objects.filter(collection=collection).count()}, editions: "
        f"{Edition.objects.filter(identifier__pools__collection=collection).count()}, "
        f"simulator requests: {server.state.counts}"
    )


def _run_chain(collection: Collection, out: Callable[[str], None]) -> int:
    """Queue a chain and wait (polling history) until it is done or has stopped."""
    first = enqueue_job(
        CHAIN,
        kwargs={"collection_id": collection.pk, "time_budget_seconds": 1.0},
        trigger=JobRun.Trigger.COMMAND,
        triggered_by="demo",
    )
    out(f"queued chain run #{first.pk}; waiting for the default and apply clusters")
    runs = JobRun.objects.filter(job__startswith="bibliotheca.", id__gte=first.pk)

    def finished() -> bool:
        hops = runs.filter(job=CHAIN)
        over = (
            hops.filter(result__done=True).exists()
            or hops.filter(status="failed").exclude(result__has_key="retry_run_id").exists()
        )
        return over and not runs.filter(status__in=["queued", "running"]).exists()

    wait_until(finished, timeout_seconds=120, poll_seconds=0.3, what="the purchase chain")
    return first.pk
