"""One chain end to end through real qcluster processes (default + apply) and the simulator."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import Edition, LicensePool, Timestamp
from devkit.bibliotheca_simulator import Catalogue, Fault
from devkit.waiting import wait_until
from jobs.models import JobRun
from jobs.runner import enqueue_job

CHAIN = "bibliotheca.import_purchase_records_by_collection"


@pytest.fixture
def catalogue() -> Catalogue:
    """The three days before today: every record is in the past whenever the chains run (a
    record of today, one every 24 minutes, could fall between `expected` and a chain's end)."""
    today = timezone.now().date()
    return Catalogue(start_date=today - timedelta(days=3), days=3, records_per_day=60)


def test_chain__runs_through_the_clusters_with_a_fault_and_applies_editions(
    qcluster, catalogue, collection, simulator
):
    start = datetime.combine(catalogue.start_date, datetime.min.time(), tzinfo=UTC)
    Timestamp.objects.create(service=PURCHASE_RECORD_SERVICE, collection=collection, finish=start)
    simulator.state.faults.append(Fault(kind="malformed_xml", endpoint="items"))
    qcluster.start(["default", "apply"])
    expected = len(catalogue.records_between(start, timezone.now()))

    enqueue_job(
        CHAIN,
        kwargs={"collection_id": collection.pk, "time_budget_seconds": 0},
        trigger="command",
        triggered_by="test",
    )
    wait_until(
        lambda: (
            JobRun.objects.filter(job=CHAIN).exclude(status__in=["queued", "running"]).exists()
            and not JobRun.objects.filter(status__in=["queued", "running"]).exists()
        ),
        timeout_seconds=60,
        what="the chain and its applies to finish",
    )

    runs = list(JobRun.objects.filter(job=CHAIN).order_by("id"))
    # The hour before the checkpoint is empty; the next page's items answer was
    # unreadable (terminal): that hop failed and the chain stopped there.
    assert [r.status for r in runs] == ["succeeded", "failed"]
    assert "unreadable items XML" in runs[1].error and LicensePool.objects.count() == 0

    enqueue_job(
        CHAIN,
        kwargs={"collection_id": collection.pk, "time_budget_seconds": 0.2},
        trigger="command",
        triggered_by="test",
    )
    wait_until(
        lambda: (
            JobRun.objects.filter(job=CHAIN, result__done=True).exists()
            and not JobRun.objects.filter(status__in=["queued", "running"]).exists()
        ),
        timeout_seconds=60,
        what="the second chain and its applies to finish",
    )
    runs = list(JobRun.objects.filter(job=CHAIN).order_by("id"))[2:]
    assert {r.status for r in runs} == {"succeeded"}
    assert sum(r.result["records"] for r in runs) == expected == catalogue.total_records
    assert LicensePool.objects.count() == expected == Edition.objects.count()
    assert Timestamp.objects.get(collection=collection).finish >= runs[0].started_at
