"""kill -9 a real qcluster in the middle of a Bibliotheca backfill chain against the simulator.

The simulator answers in 30 ms, so a hop (2 s budget) has several windows' pages in
flight (fetched or being fetched, not written) when it dies. Verified: no duplicate
LicensePool (one per catalogue record), every pool's metadata written or staged for an
apply run (nothing lost with the pages in flight), the checkpoint (`Timestamp.finish`,
sampled every 50 ms from another connection through the crash and the restart) never
moved backwards, the restarted chain took the dead chain's lease over at once and
finished the range, and its progress counts equal the rows present.

Slow (about 12 s: a chain over the whole backfill range, killed and resumed): `make
test-slow`.
"""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import Edition, LicensePool, PendingEdition, Timestamp
from bibliotheca.services.purchase_chain import purchase_lock_key
from devkit.bibliotheca_simulator import Catalogue
from jobs.models import JobRun
from jobs.runner import enqueue_job
from tests.reliability.conftest import duplicate_pools, poll, say, wait_for_lock_free

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHAIN = "bibliotheca.import_purchase_records_by_collection"
DAYS = 40


@pytest.fixture
def catalogue() -> Catalogue:
    """DAYS days of 100 records ending yesterday: two full pages and an empty one per day."""
    today = timezone.now().date()
    return Catalogue(start_date=today - timedelta(days=DAYS), days=DAYS, records_per_day=100)


def checkpoint(collection_id: int):
    return (
        Timestamp.objects.filter(collection_id=collection_id, service=PURCHASE_RECORD_SERVICE)
        .values_list("finish", flat=True)
        .first()
    )


def test_kill_9_mid_backfill_chain__no_duplicate_pools_checkpoint_monotonic(
    qcluster, quiet_scheduler, catalogue, collection, simulator, sampler
):
    start = datetime.combine(catalogue.start_date, datetime.min.time(), tzinfo=UTC)
    Timestamp.objects.create(service=PURCHASE_RECORD_SERVICE, collection=collection, finish=start)
    simulator.state.latency_ms = 30
    total = catalogue.total_records
    kill_at = start + timedelta(days=DAYS // 3)
    started = time.monotonic()

    with sampler(lambda: checkpoint(collection.pk)) as samples:
        (cluster,) = qcluster.start(["default"])
        enqueue_job(
            CHAIN,
            kwargs={"collection_id": collection.pk, "time_budget_seconds": 2.0},
            trigger="command",
            triggered_by="crash-test",
        )
        poll(lambda: checkpoint(collection.pk) >= kill_at, timeout=120, what="a third of the range")
        qcluster.kill(cluster)
        at_kill = checkpoint(collection.pk)
        pools_at_kill = LicensePool.objects.count()
        read_at_kill = simulator.state.counts.get("marc", 0)
        written_at_kill = Timestamp.objects.get(collection=collection).progress["pages"]
        killed = list(
            JobRun.objects.filter(job=CHAIN, status="running").values_list("pk", flat=True)
        )
        queued = list(
            JobRun.objects.filter(job=CHAIN, status="queued").values_list("pk", flat=True)
        )
        hops = JobRun.objects.filter(job=CHAIN).count()
        say(
            f"kill -9 cluster pid {cluster.pid} after {hops} hops: checkpoint {at_kill:%Y-%m-%d %H:%M}, "
            f"{pools_at_kill:,}/{total:,} pools, hop(s) {killed} running, next hop(s) {queued} "
            f"queued, {read_at_kill} MARC pages asked for, {written_at_kill} written"
        )
        assert read_at_kill > written_at_kill  # pages were in flight
        assert pools_at_kill < total
        qcluster.start(["default"])
        if queued:
            # Killed between hops: the queued next hop resumes the chain under its live lease.
            restarted = JobRun.objects.get(pk=queued[0])
            recovery = "the queued next hop resumed the chain"
        else:
            # Killed inside a hop: the chain's lease was held by the hop, which died with
            # its database session: the next chain takes it over at once and records the
            # killed hop lost.
            wait_for_lock_free(purchase_lock_key(collection.pk))
            restarted = enqueue_job(
                CHAIN,
                kwargs={"collection_id": collection.pk, "time_budget_seconds": 2.0},
                trigger="command",
                triggered_by="crash-test",
            )
            recovery = "a new chain took the dead chain's lease over at once"
        poll(
            lambda: (
                JobRun.objects.filter(job=CHAIN, pk__gte=restarted.pk, result__done=True).exists()
                and not JobRun.objects.filter(job=CHAIN, status__in=["queued", "running"])
                .exclude(pk__in=killed)
                .exists()
            ),
            timeout=180,
            what="the restarted chain to finish",
            every=0.2,
        )
    restarted.refresh_from_db()

    values, backwards, dupes = samples.values(), samples.backwards(), duplicate_pools()
    after = JobRun.objects.filter(job=CHAIN, pk__gte=restarted.pk)
    failed = list(after.filter(status="failed").values_list("pk", "error"))
    assert dupes == 0
    assert LicensePool.objects.count() == total
    # Nothing lost: every pool's metadata is written, or staged for its apply run (the
    # apply cluster is not running in this test).
    staged = set(PendingEdition.objects.values_list("identifier_id", flat=True))
    written = set(Edition.objects.values_list("identifier_id", flat=True))
    assert set(LicensePool.objects.values_list("identifier_id", flat=True)) == staged | written
    assert backwards == [], backwards[:5]
    assert failed == []
    assert checkpoint(collection.pk) >= start + timedelta(days=DAYS)
    if not queued:
        assert restarted.status == "succeeded" and restarted.result["took_over"] is True
        lost = JobRun.objects.filter(pk__in=killed).values_list("status", "error")
        assert all(s == "failed" and e.startswith("worker lost: ") for s, e in lost), lost
    # The pages read again after the kill were written and not counted twice.
    progress = Timestamp.objects.get(collection=collection).progress
    assert progress["records"] == LicensePool.objects.count() == total
    say(
        f"restart ({recovery}): run {restarted.pk} {restarted.status}"
        f"{' (' + restarted.result.get('reason', '') + ')' if restarted.status == 'skipped' else ''}; "
        f"{after.count()} hops after the restart; verified: {LicensePool.objects.count():,} pools "
        f"= {total:,} records, 0 duplicates, checkpoint sampled {len(values)} times never moved "
        f"backwards ({values[0]:%m-%d} -> {at_kill:%m-%d} at kill -> {values[-1]:%m-%d}), "
        f"no failed hop; {time.monotonic() - started:.1f} s"
    )
