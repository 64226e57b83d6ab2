"""Job entry points of the bibliotheca app."""

from datetime import datetime
from typing import Annotated, Any

from bibliotheca import sql
from bibliotheca.conf import DEFAULT_START
from bibliotheca.exceptions import BadResponse, RequestTimedOut
from bibliotheca.models import Collection
from bibliotheca.services.pages import APPLY_JOB
from bibliotheca.services.purchase_chain import (
    CHAIN_JOB,
    import_purchase_records_hop,
    purchase_lock_key,
)
from jobs.arguments import IsoDate, Range
from jobs.exceptions import BadJobArguments
from jobs.models import JobRun
from jobs.registry import job
from jobs.runner import enqueue_job
from jobs.runs.current import current_run
from jobs.runs.retry import RetryPolicy

#: 4 retries, 60 s exponential backoff, only for timeouts and 5xx (bibliotheca-api.md "Errors").
CHAIN_RETRY = RetryPolicy(
    max_attempts=5, base_seconds=60, cap_seconds=960, retry_on=(RequestTimedOut, BadResponse)
)
#: A chain's days: from the first day the partner API has (2014-01-01) to a month ahead
#: (a chain walks day by day up to `until`: 9999-12-31 would never end, then overflow).
ChainDay = Annotated[
    str, IsoDate(earliest=DEFAULT_START.date(), latest_days_ahead=31, with_time=True)
]


def check_chain_arguments(kwargs: dict[str, Any]) -> None:
    """What the signature cannot say, checked before every hop exists: the collection
    exists, a new chain's is enabled (a running chain's next hop is queued and stops the
    chain itself, `skipped`), and `since` is not after `until`."""
    collection_id = kwargs["collection_id"]
    found = Collection.objects.filter(pk=collection_id).values_list("name", "enabled").first()
    if found is None:
        raise BadJobArguments(f"{CHAIN_JOB}: collection {collection_id} does not exist")
    if kwargs.get("current_day") is None and not found[1]:
        raise BadJobArguments(f"{CHAIN_JOB}: collection {found[0]!r} is disabled")
    since, until = _moment(kwargs.get("since")), _moment(kwargs.get("until"))
    if since and until and since > until:
        raise BadJobArguments(f"{CHAIN_JOB}: since={kwargs['since']!r} is after until")


@job(
    "bibliotheca.import_purchase_records_for_all_collections",
    cron="0 4 * * *",
    timeout_seconds=300,
    # as the admin's "Force reimport"
    argument_permissions={"force_reimport": ("bibliotheca.change_collection",)},
    run_late_once=True,  # a night missed while the cluster was down still runs, late
)
def import_purchase_records_for_all_collections(*, force_reimport: bool = False) -> dict[str, Any]:
    """Queue one purchase-record chain per enabled Bibliotheca collection (daily 04:00 UTC)."""
    runs = [
        enqueue_job(
            CHAIN_JOB,
            kwargs={"collection_id": c.pk, "force_reimport": force_reimport},
            trigger=JobRun.Trigger.CHAIN,
            parent=current_run(),
        )
        for c in Collection.objects.filter(enabled=True, protocol=Collection.Protocol.BIBLIOTHECA)
    ]
    return {"queued": len(runs), "run_ids": [r.pk for r in runs], "force_reimport": force_reimport}


@job(
    CHAIN_JOB,
    # one chain per collection: each hop hands the lock to the next (purchase_chain)
    lock_key=lambda kwargs: purchase_lock_key(kwargs["collection_id"]),
    retry=CHAIN_RETRY,
    timeout_seconds=600,
    # as the admin's "Force reimport"
    argument_permissions={"force_reimport": ("bibliotheca.change_collection",)},
    validate=check_chain_arguments,
)
def import_purchase_records_by_collection(
    *,
    collection_id: int,
    current_day: ChainDay | None = None,
    offset: Annotated[int, Range(min=1)] = 1,
    force_reimport: bool = False,
    time_budget_seconds: Annotated[float, Range(min=0, max=86400)] | None = None,
    until: ChainDay | None = None,
    since: ChainDay | None = None,
    overlap_until: ChainDay | None = None,
    not_before: ChainDay | None = None,
) -> dict[str, Any]:
    """One hop of a collection's purchase-record import; queues the next hop until up to date."""
    return import_purchase_records_hop(
        collection_id=collection_id,
        current_day=_moment(current_day),
        offset=offset,
        force_reimport=force_reimport,
        time_budget_seconds=time_budget_seconds,
        until=_moment(until),
        since=_moment(since),
        overlap_until=_moment(overlap_until),
        not_before=_moment(not_before),
    )


def _moment(value: str | None) -> datetime | None:
    """A `ChainDay` as a datetime (its format and range were checked before the run)."""
    return None if value is None else datetime.fromisoformat(value)


@job(
    APPLY_JOB,
    cluster="apply",
    single_flight=False,  # idempotent: a batch's rows are taken once, by data hash
    retry=True,
    timeout_seconds=300,
)
def apply_bibliographic_task(*, collection_id: int, batch: str) -> dict[str, Any]:
    """Write the Edition rows an import page staged for `batch` whose metadata hash
    changed (apply cluster)."""
    return {"collection_id": collection_id, "batch": batch, **sql.apply_staged(batch)}
