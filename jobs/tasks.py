"""Jobs of the core itself. Thin: each calls one service and returns its result dict."""

from typing import Annotated, Any

from jobs.arguments import Range
from jobs.outbox.alerts import scan_alerts
from jobs.outbox.notifications import deliver_due_notifications
from jobs.queue.reaper import reap_lost_runs
from jobs.registry import job
from jobs.runs.history import prune_history


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
