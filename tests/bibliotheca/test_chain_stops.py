"""The chain stops when it should: a disabled or deleted collection ends it before its
next request, and a manual run that finds the chain's lock held exits 3 naming it."""

import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connections

from bibliotheca.models import Collection, LicensePool
from bibliotheca.services.purchase_chain import purchase_lock_key
from devkit.bibliotheca_simulator import Fault
from jobs.models import JobRun, Lease
from tests.bibliotheca.conftest import CHAIN, drain, start_chain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen_clock")]


def chain_runs() -> list[JobRun]:
    return list(JobRun.objects.filter(job=CHAIN).order_by("id"))


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        ("disable", "collection 'Main library' is disabled; its chain stops, no request sent"),
        ("delete", "collection #{pk} was deleted; its chain stops, no request sent"),
    ],
)
def test_collection_disabled_or_deleted_between_hops__the_next_hop_stops_before_any_request(
    collection, simulator, stop, reason
):
    start_chain(collection, time_budget_seconds=0)
    drain(max_runs=2, include_apply=False)
    requests = len(simulator.state.log)
    pk = collection.pk
    if stop == "disable":
        Collection.objects.filter(pk=pk).update(enabled=False)
    else:
        Collection.objects.filter(pk=pk).delete()

    drain(include_apply=False)

    runs = chain_runs()
    assert len(runs) == 3  # two hops, then the one that stopped
    assert (runs[-1].status, runs[-1].result["reason"]) == ("skipped", reason.format(pk=pk))
    assert len(simulator.state.log) == requests
    assert not Lease.objects.filter(key=purchase_lock_key(pk)).exists()


def test_collection_deleted_mid_hop__the_hop_ends_cleanly_skipped(collection, simulator, settings):
    settings.BIBLIOTHECA_REQUEST_TIMEOUT_SECONDS = 10
    # Every items request answers after 0.2 s: the collection goes while pages wait.
    simulator.state.faults.append(
        Fault(kind="timeout", endpoint="items", times=30, delay_seconds=0.2)
    )
    pk = collection.pk
    start_chain(collection, time_budget_seconds=600, until="2014-01-11T00:00:00+00:00")

    deleted_mid_hop: list[bool] = []

    def delete() -> None:
        """Delete once the hop is running with a page written, so the two overlap."""
        try:
            for _ in range(1500):
                if LicensePool.objects.filter(collection_id=pk).exists() and (
                    JobRun.objects.filter(job=CHAIN, status=JobRun.Status.RUNNING).exists()
                ):
                    break
                if not JobRun.objects.filter(job=CHAIN, status__in=["queued", "running"]).exists():
                    return  # the hop ended first: the assertion below says so
                time.sleep(0.02)
            else:
                return
            # Django cascades in Python: a page committed between its pool delete and the
            # collection's makes the delete fail at commit; done again, as a person would.
            for _ in range(20):
                try:
                    Collection.objects.filter(pk=pk).delete()
                    deleted_mid_hop.append(True)
                    break
                except IntegrityError:
                    continue
        finally:
            connections.close_all()  # this thread's

    deleter = threading.Thread(target=delete)
    deleter.start()
    try:
        (run,) = drain(include_apply=False)
    finally:
        deleter.join()

    assert deleted_mid_hop, "the collection was never deleted while the hop ran"
    assert run.status == "skipped" and run.error == ""
    assert run.result["reason"] == f"collection #{pk} was deleted during the hop; its chain stops"
    assert not LicensePool.objects.exists()
    assert not Lease.objects.filter(key=purchase_lock_key(pk)).exists()


def test_manual_run_while_a_chain_holds_the_lock__exits_3_naming_the_chain(collection, simulator):
    start_chain(collection, time_budget_seconds=0)
    drain(max_runs=1, include_apply=False)
    (next_hop,) = JobRun.objects.filter(job=CHAIN, status="queued")

    with pytest.raises(CommandError) as error:
        call_command("run_job", CHAIN, f"collection_id={collection.pk}")

    assert error.value.returncode == 3
    message = str(error.value)
    assert f"lock bibliotheca:purchase_records:{collection.pk} is held by the chain of run " in (
        message
    )
    assert f"#{next_hop.pk} ({CHAIN}, queued)" in message
    assert "or as soon as its database session ends" in message
    assert JobRun.objects.filter(job=CHAIN, status="skipped").count() == 1
