"""Fan-out: one queued chain per enabled Bibliotheca collection."""

from typing import Any

from bibliotheca.models import Collection
from bibliotheca.services.purchase_chain import CHAIN_JOB
from jobs.models import JobRun
from jobs.runner import enqueue_job
from jobs.runs.current import current_run


def queue_purchase_imports(
    *,
    collections=None,
    force_reimport: bool = False,
    trigger: str = JobRun.Trigger.CHAIN,
    triggered_by: str = "",
) -> dict[str, Any]:
    """Queue a chain per collection (default: all enabled); returns the queued run ids."""
    parent = current_run()
    runs = [
        enqueue_job(
            CHAIN_JOB,
            kwargs={"collection_id": c.pk, "force_reimport": force_reimport},
            trigger=trigger,
            triggered_by=triggered_by,
            parent=parent,
        )
        for c in (
            Collection.objects.filter(enabled=True, protocol=Collection.Protocol.BIBLIOTHECA)
            if collections is None
            else collections
        )
    ]
    return {"queued": len(runs), "run_ids": [r.pk for r in runs], "force_reimport": force_reimport}
