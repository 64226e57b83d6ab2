"""A chain's orphaned next hop and a new chain after its lock lost its holder.

Deterministic, in this process: chain A runs a few hops and leaves its next hop queued;
its lock loses its holder (released by hand); chain B (the next 04:00 run, or an
operator) takes the lock; A's orphaned hop then finds the lock held by chain B and stops
chain A (recorded skipped, flagged). No pool may be duplicated and the checkpoint must
never move backwards.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import LicensePool, Timestamp
from bibliotheca.services.purchase_chain import purchase_lock_key
from devkit.bibliotheca_simulator import Catalogue
from jobs.models import JobRun, Lease
from jobs.runner import enqueue_job, execute_queued_run
from tests.bibliotheca.conftest import drain
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db(transaction=True)
CHAIN = "bibliotheca.import_purchase_records_by_collection"


@pytest.fixture
def catalogue() -> Catalogue:
    today = timezone.now().date()
    return Catalogue(start_date=today - timedelta(days=6), days=6, records_per_day=120)


def finish(collection) -> datetime:
    return Timestamp.objects.get(collection=collection).finish


def test_orphan_hop_and_new_chain__checkpoint_never_moves_backwards(
    catalogue, collection, simulator
):
    start = datetime.combine(catalogue.start_date, datetime.min.time(), tzinfo=UTC)
    Timestamp.objects.create(service=PURCHASE_RECORD_SERVICE, collection=collection, finish=start)
    kwargs = {"collection_id": collection.pk, "time_budget_seconds": 0}
    enqueue_job(CHAIN, kwargs=kwargs, trigger="command", triggered_by="chain-a")
    drain(max_runs=4, include_apply=False)  # chain A: 4 hops, its 5th is queued
    orphan = JobRun.objects.get(job=CHAIN, status="queued")
    # The lease loses its holder (released by hand, say) while A's next hop waits.
    Lease.objects.filter(key=purchase_lock_key(collection.pk)).update(
        run_id=None, expires_at=timezone.now() - timedelta(seconds=1)
    )
    b_first = enqueue_job(CHAIN, kwargs=kwargs, trigger="command", triggered_by="chain-b")
    execute_queued_run(b_first.pk)  # chain B takes the lease and starts at the checkpoint
    samples = [finish(collection)]
    # A's worker runs its orphaned hop: the lock is B's now, so chain A stops there.
    execute_queued_run(orphan.pk)
    samples.append(finish(collection))
    orphan.refresh_from_db()
    assert orphan.status == "skipped" and "is held by the chain of run #" in orphan.result["reason"]
    assert orphan.needs_attention and "was taken while this run waited" in orphan.attention_reason
    assert not JobRun.objects.filter(parent=orphan, job=CHAIN).exists()
    while drain(max_runs=1, include_apply=False):  # oldest first: A and B alternate
        samples.append(finish(collection))

    backwards = [(a, b) for a, b in zip(samples, samples[1:], strict=False) if b < a]
    dupes = (
        LicensePool.objects.values("identifier_id").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    lost = JobRun.objects.filter(job=CHAIN, result__lease_lost=True).count()
    say(
        f"orphan hop {orphan.pk} of chain A + chain B: {len(samples)} checkpoints, "
        f"{len(backwards)} moves backwards (first {backwards[:1]}), {lost} hops with "
        f"lease_lost, {dupes} duplicate pools, {LicensePool.objects.count()} pools"
    )
    assert dupes == 0 and LicensePool.objects.count() == catalogue.total_records
    assert backwards == []
