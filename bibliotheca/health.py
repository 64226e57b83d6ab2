"""The `bibliotheca` health check (jobs_health, /health/): a warning per enabled
collection that needs a look, since the core's per-job `failures_24h` lets one
collection's success hide another's failure. Never unhealthy: one partner's bad night
must not take the web app out of its load balancer."""

import logging
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone

from bibliotheca.conf import PURCHASE_RECORD_SERVICE, bibliotheca_settings
from bibliotheca.models import Collection, Gap, Timestamp
from jobs.health.checks import Check

logger = logging.getLogger("bibliotheca.health")

NAME = "bibliotheca"
FIX = "see admin Bibliotheca > Collections and Gaps; re-run, retry or dismiss there"


def check_collections() -> Check:
    """One line per enabled collection that needs a look, with the errors behind them."""
    stale_before = timezone.now() - timedelta(hours=float(bibliotheca_settings.STALE_AFTER_HOURS))
    open_gaps = Q(gaps__status=Gap.Status.OPEN)
    try:
        collections = list(
            Collection.objects.filter(enabled=True)
            .annotate(
                open_gaps=Count("gaps", filter=open_gaps),
                first_gap=Min("gaps__day", filter=open_gaps),
            )
            .order_by("name")
        )
        stamps = {
            t.collection_id: t
            for t in Timestamp.objects.filter(
                service=PURCHASE_RECORD_SERVICE, collection__enabled=True
            ).only("collection_id", "finish", "exception")
        }
    except Exception as exc:  # a health page never crashes on one check
        logger.exception("health: cannot read the Bibliotheca collections")
        return Check(
            NAME, False, "cannot read collections (see the log)", warning=True, error=str(exc)
        )
    problems, errors = [], []
    for collection in collections:
        ts = stamps.get(collection.pk)
        found = []
        if ts is not None and ts.exception:
            found.append("last chain failed")
            errors.append(f"{collection.name!r}: {ts.exception[:300]}")
        if collection.open_gaps:
            found.append(
                f"{collection.open_gaps} open gap(s) from {collection.first_gap:%Y-%m-%d %H:%M}"
            )
        if ts is not None and ts.finish is not None and ts.finish < stale_before:
            found.append(f"no progress since {ts.finish:%Y-%m-%d %H:%M} UTC")
        if found:
            problems.append(f"collection {collection.name!r}: {', '.join(found)}")
    if not problems:
        return Check(NAME, True, "")
    return Check(
        NAME, False, f"{'; '.join(problems)} ({FIX})", warning=True, error="; ".join(errors)
    )
