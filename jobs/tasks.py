"""Jobs of the core itself. Thin: each calls one service and returns its result dict."""

import time
from typing import Annotated, Any

from jobs.arguments import Range
from jobs.outbox.alerts import scan_alerts
from jobs.outbox.notifications import (
    OutgoingNotification,
    deliver_due_notifications,
    queue_notification,
)
from jobs.queue.reaper import reap_lost_runs
from jobs.registry import job
from jobs.runs.history import prune_history
from jobs.runs.progress import report_progress
from jobs.runs.retry import RetryPolicy


@job(
    "jobs.prune_history",
    cron="30 3 * * *",
    retry=True,
    run_late_once=True,
    permissions=("jobs.delete_jobrun",),  # deletes history; run-only staff may not
)
def prune_history_task(
    *, older_than_days: Annotated[int, Range(min=1, max=36500)] | None = None
) -> dict[str, Any]:
    """Delete run history, django-q2 task rows and sent notifications older than 90 days."""
    return prune_history(older_than_days=older_than_days)


@job(
    "jobs.deliver_notifications",
    cron="* * * * *",
    cluster="notifications",
    single_flight=False,
    timeout_seconds=290,
)
def deliver_notifications_task(
    *, batch_size: Annotated[int, Range(min=1, max=10_000)] | None = None
) -> dict[str, Any]:
    """Send due outbox rows (email, SMS); several may run at once, rows are claimed SKIP LOCKED."""
    return deliver_due_notifications(batch_size=batch_size)


@job("jobs.reap_lost_runs", cron="*/5 * * * *", timeout_seconds=240)
def reap_lost_runs_task(
    *, limit: Annotated[int, Range(min=1, max=100_000)] | None = None
) -> dict[str, Any]:
    """Queue again runs whose task or worker was lost (see jobs.queue.reaper)."""
    return reap_lost_runs(limit=limit)


@job("jobs.scan_alerts", cron="* * * * *", cluster="notifications", single_flight=False)
def scan_alerts_task() -> dict[str, Any]:
    """Tell staff about failures for good, flags and cron slots that never started; resolve
    alerts of jobs that succeeded since (also run by /health/ and after each run)."""
    return scan_alerts()


@job("jobs.demo_job", retry=RetryPolicy(max_attempts=2, base_seconds=1), timeout_seconds=60)
def demo_job(
    *,
    items: Annotated[int, Range(min=0, max=10_000_000)] = 1000,
    notify: str = "",
    fail: bool = False,
    step_seconds: Annotated[float, Range(min=0, max=10)] = 0,
) -> dict[str, Any]:
    """A small job for the demo and smoke tests: sums numbers, optionally emails the result.

    It reports progress in 5 steps; `step_seconds` pauses between them so the admin run
    page and `manage.py run_job` have something to show.
    """
    if fail:
        raise RuntimeError("demo_job asked to fail")
    checksum = 0
    steps = 5
    for step in range(steps):
        checksum += sum(range(items * step // steps, items * (step + 1) // steps))
        report_progress(done=items * (step + 1) // steps, total=items, unit="items")
        if step_seconds and step < steps - 1:
            time.sleep(min(step_seconds, 10))
    notified = False
    if notify:
        notified = queue_notification(
            OutgoingNotification(
                channel="email",
                recipient=notify,
                template="jobs/notifications/demo_result",
                dedup_key=f"demo_result:{notify}:{items}",
                context={"items": items, "checksum": checksum},
            )
        )
    return {"items": items, "checksum": checksum, "notified": notified}
