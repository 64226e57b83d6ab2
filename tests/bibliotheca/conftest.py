"""Fixtures: a real simulator over HTTP, collections pointing at it, a chain driver."""

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine

from bibliotheca.models import Collection
from devkit.bibliotheca_simulator import Catalogue, start_simulator
from devkit.bibliotheca_simulator.server import SimulatorServer
from jobs.models import JobRun
from jobs.runner import enqueue_job, execute_queued_run

#: The frozen "now" of most tests: 3.5 days after the default start.
NOW = datetime(2014, 1, 4, 12, 0, tzinfo=UTC)
CHAIN = "bibliotheca.import_purchase_records_by_collection"
APPLY = "bibliotheca.apply_bibliographic"
#: With `catalogue` and NOW: days 1-3 have 120 records (pages 50, 50, 20), day 4 until
#: 12:00 has 60 (50, 10).
PAGES, RECORDS = 11, 420


@pytest.fixture
def frozen_clock():
    """The clock stopped at NOW (modules use it autouse or by name)."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def start_chain(collection: Collection, **kwargs) -> JobRun:
    """Queue the chain for `collection` as the command does (kwargs: the chain's)."""
    return enqueue_job(
        CHAIN,
        kwargs={"collection_id": collection.pk, **kwargs},
        trigger="command",
        triggered_by="test",
    )


@pytest.fixture
def catalogue() -> Catalogue:
    """120 records a day from 2014-01-01: each day is pages of 50, 50, 20."""
    return Catalogue(start_date=date(2014, 1, 1), days=10, records_per_day=120)


@pytest.fixture
def simulator(catalogue: Catalogue) -> Iterator[SimulatorServer]:
    server = start_simulator(catalogue, library_id="lib", account_id="acct", account_key="key")
    yield server
    server.stop()


@pytest.fixture
def make_collection(simulator: SimulatorServer) -> Callable[..., Collection]:
    def make(**overrides) -> Collection:
        fields = {
            "name": "Main library",
            "library_id": "lib",
            "account_id": "acct",
            "account_key": "key",
            "base_url": simulator.base_url,
            **overrides,
        }
        return Collection.objects.create(**fields)

    return make


@pytest.fixture
def collection(make_collection) -> Collection:
    return make_collection()


def staged_identifiers(apply_run: JobRun) -> list[int]:
    """Identifier ids of the Edition rows staged for an apply run, in staging order
    (the rows its apply has not taken yet)."""
    from bibliotheca.models import PendingEdition

    rows = PendingEdition.objects.filter(batch=apply_run.kwargs["batch"]).order_by("id")
    return list(rows.values_list("identifier_id", flat=True))


def drain(*, max_runs: int = 500, include_apply: bool = True) -> list[JobRun]:
    """Execute queued bibliotheca runs in this process, oldest first (retries without waiting)."""
    done: list[JobRun] = []
    for _ in range(max_runs):
        queued = JobRun.objects.filter(status=JobRun.Status.QUEUED, job__startswith="bibliotheca.")
        if not include_apply:
            queued = queued.exclude(job="bibliotheca.apply_bibliographic")
        run = queued.order_by("id").first()
        if run is None:
            break
        try:
            execute_queued_run(run.pk)
        except Exception:
            pass  # recorded failed in history; the test reads the row
        run.refresh_from_db()
        done.append(run)
    return done


@pytest.fixture(autouse=True)
def quick_request_retries(settings):
    """In-place request retries without their backoff (the tests count tries, not waits)."""
    settings.BIBLIOTHECA_RETRY_WAIT_SECONDS = 0.0
