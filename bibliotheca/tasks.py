"""Job entry points of the bibliotheca app (thin: each calls one service)."""

from typing import Any

from bibliotheca.exceptions import BadResponse, RequestTimedOut
from bibliotheca.services.apply import apply_bibliographic, apply_staged
from bibliotheca.services.fan_out import queue_purchase_imports
from bibliotheca.services.purchase_chain import import_purchase_records_hop
from jobs.registry import job
from jobs.retry import RetryPolicy

#: Seed 004: 4 retries, 60 s exponential backoff, only for timeouts and 5xx.
CHAIN_RETRY = RetryPolicy(
    max_attempts=5, base_seconds=60, cap_seconds=960, retry_on=(RequestTimedOut, BadResponse)
)


@job(
    "bibliotheca.import_purchase_records_for_all_collections",
    cron="0 4 * * *",
    lease_seconds=300,
    timeout_seconds=300,
    # as the admin's "Force reimport"
    argument_permissions={"force_reimport": ("bibliotheca.change_collection",)},
    run_late_once=True,  # a night missed while the cluster was down still runs, late
)
def import_purchase_records_for_all_collections(*, force_reimport: bool = False) -> dict[str, Any]:
    """Queue one purchase-record chain per enabled Bibliotheca collection (daily 04:00 UTC)."""
    return queue_purchase_imports(force_reimport=force_reimport)


@job(
    "bibliotheca.import_purchase_records_by_collection",
    single_flight=False,  # the chain holds its own per-collection lease across hops
    retry=CHAIN_RETRY,
    timeout_seconds=600,
    # as the admin's "Force reimport"
    argument_permissions={"force_reimport": ("bibliotheca.change_collection",)},
)
def import_purchase_records_by_collection(
    *,
    collection_id: int,
    current_day: str | None = None,
    offset: int = 1,
    lock_owner: str | None = None,
    force_reimport: bool = False,
    time_budget_seconds: float | None = None,
    until: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """One hop of a collection's purchase-record import; queues the next hop until up to date."""
    return import_purchase_records_hop(
        until=until,
        since=since,
        collection_id=collection_id,
        current_day=current_day,
        offset=offset,
        lock_owner=lock_owner,
        force_reimport=force_reimport,
        time_budget_seconds=time_budget_seconds,
    )


@job(
    "bibliotheca.apply_bibliographic",
    cluster="apply",
    single_flight=False,  # idempotent: a batch's rows are taken once, by data hash
    retry=True,
    timeout_seconds=300,
)
def apply_bibliographic_task(
    *,
    collection_id: int,
    batch: str | None = None,
    items: list[dict[str, Any]] | None = None,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """Write Edition rows for items whose metadata hash changed (apply cluster): the rows
    an import staged for `batch`, or (runs queued before staging) the `items` given."""
    if batch is not None:
        return {"collection_id": collection_id, "batch": batch, **apply_staged(batch)}
    return {"collection_id": collection_id, **apply_bibliographic(items=items or [], fields=fields)}
