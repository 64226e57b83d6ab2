"""Alerts: staff are told when a job fails for good, is flagged, or misses its slot, by one
set-based scan run from three places (docs/operations.md "Alerts")."""

import logging
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.core import checks
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from jobs import sql
from jobs.conf import job_entries, jobs_settings
from jobs.exceptions import JobsError, UnknownJob
from jobs.models import Alert, JobRun, Notification
from jobs.outbox.alert_webhook import webhook_url_problem
from jobs.outbox.notifications import (
    OutgoingNotification,
    deliver_due_notifications,
    queue_notifications,
)
from jobs.registry import ALERT_CHANNELS, get_job
from jobs.runs.queue_task import RUN_SCHEDULED_JOB

logger = logging.getLogger("jobs.alerts")

TEMPLATE = "jobs/notifications/alert"
#: Outbox recipient of webhook alerts: the URL itself is a secret read at delivery.
WEBHOOK_RECIPIENT = "alert-webhook"
#: Runs older than this are never counted (history before alerts existed, a long outage).
LOOKBACK = timedelta(days=1)


class AlertSettingsError(JobsError):
    """JOBS_ALERT_CHANNELS names an unknown job or channel."""


def channel_overrides() -> Mapping[str, str]:
    """JOBS_ALERT_CHANNELS (settings dict or "job=email; other=off"), every entry checked."""
    entries = job_entries("JOBS_ALERT_CHANNELS", error=AlertSettingsError, what="channel")
    for name, channel in entries.items():
        if channel not in ALERT_CHANNELS:
            raise AlertSettingsError(
                f"JOBS_ALERT_CHANNELS: {name}: {channel!r} is not one of {', '.join(ALERT_CHANNELS)}"
            )
    return entries


def alert_emails() -> list[str]:
    """JOBS_ALERT_EMAILS as a list (settings may hold a tuple or "a@x, b@y")."""
    value = jobs_settings.ALERT_EMAILS
    if isinstance(value, str):
        value = value.split(",")
    return [email.strip() for email in value if email and email.strip()]


def check_alert_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """System check: a bad address or channel stops start-up, not an alert."""
    errors = []
    for email in alert_emails():
        try:
            validate_email(email)
        except ValidationError:
            errors.append(
                checks.Error(
                    f"JOBS_ALERT_EMAILS: {email!r} is not an email address", id="jobs.E203"
                )
            )
    url = str(jobs_settings.ALERT_WEBHOOK_URL)
    if url and (problem := webhook_url_problem(url)):
        errors.append(checks.Error(problem, id="jobs.E201"))
    try:
        channel_overrides()
    except AlertSettingsError as exc:
        errors.append(checks.Error(str(exc), id="jobs.E202"))
    return errors


def alert_channels(job: str) -> str:
    """Where `job`'s alerts go: the override, else the registry's, else "both". A bad
    override (refused at start-up) is logged and ignored here: a typo never swallows an alert."""
    try:
        overrides = channel_overrides()
    except AlertSettingsError:
        logger.exception("ignoring JOBS_ALERT_CHANNELS")
        overrides = {}
    if job in overrides:
        return overrides[job]
    try:
        return get_job(job).alerts
    except UnknownJob:  # jobs.refused_task: not a job, always told
        return "both"


def scan_alerts(*, watchdog: bool = True) -> dict[str, int]:
    """Count new problems into alerts, open and resolve alerts, queue their messages.

    `watchdog`: also open `missed` alerts for cron slots that never started.
    """
    now = timezone.now()
    repeat_before = now - timedelta(hours=int(jobs_settings.ALERT_REPEAT_HOURS))
    with transaction.atomic():
        params = {"now": now, "since": now - LOOKBACK, "repeat_before": repeat_before}
        rows = sql.fetch(sql.RECORD_RUN_ALERTS, params)
        if watchdog:
            grace = timedelta(seconds=int(jobs_settings.MISFIRE_GRACE_SECONDS))
            params = {
                "now": now,
                "func": RUN_SCHEDULED_JOB,
                "overdue_before": now - grace,
                "repeat_before": repeat_before,
            }
            rows += sql.fetch(sql.OPEN_MISSED_SLOT_ALERTS, params)
        opened = sorted({alert_id for alert_id, is_new, _ in rows if is_new})
        repeated = sorted({alert_id for alert_id, is_new, tell in rows if tell and not is_new})
        resolved = sorted(alert_id for (alert_id,) in sql.fetch(sql.RESOLVE_ALERTS, {"now": now}))
        messages = (
            _messages(opened, "opened")
            + _messages(repeated, "repeated")
            + _messages(resolved, "resolved")
        )
        queued = queue_notifications(messages) if messages else 0
    if opened or repeated or resolved:
        logger.warning("alerts: opened %s, repeated %s, resolved %s", opened, repeated, resolved)
    return {
        "alerts_grown": len(rows),  # alerts opened or counted into
        "opened": len(opened),
        "repeated": len(repeated),
        "resolved": len(resolved),
        "messages": queued,
    }


def note_finished_run(sender: Any, run: JobRun, **kwargs: Any) -> None:
    """Scan right after a run whose outcome may open or resolve an alert (never raises:
    telling staff must not change the run's own outcome; the minutely scan catches up)."""
    try:
        matters = run.status in (
            JobRun.Status.FAILED,
            JobRun.Status.TIMED_OUT,
            JobRun.Status.MISSED,
        ) or bool(run.needs_attention)
        if not matters and run.status == JobRun.Status.SUCCEEDED:
            matters = Alert.objects.filter(job=run.job, resolved_at__isnull=True).exists()
        if matters:
            scan_alerts(watchdog=False)
    except Exception:
        logger.exception("alerts: scan after %s #%s failed", run.job, run.pk)


def _messages(alert_ids: list[int], event: str) -> list[OutgoingNotification]:
    """The outbox rows telling staff about these alerts, per each job's channels."""
    emails = alert_emails()
    webhook = bool(jobs_settings.ALERT_WEBHOOK_URL)
    items = []
    alerts = Alert.objects.filter(pk__in=alert_ids).select_related(
        "first_run", "last_run", "resolved_by"
    )
    for alert in alerts.order_by("id"):
        channels = alert_channels(alert.job)
        if channels == "off":
            continue
        context = alert_context(alert, event)
        stamp = f"{alert.notified_at:%Y%m%d%H%M%S}" if event == "repeated" else ""
        targets = []
        if channels in ("email", "both"):
            targets += [(Notification.Channel.EMAIL, email, email) for email in emails]
        if channels in ("webhook", "both") and webhook:
            targets.append((Notification.Channel.WEBHOOK, WEBHOOK_RECIPIENT, "webhook"))
        items += [
            OutgoingNotification(
                channel=channel,
                recipient=recipient,
                template=TEMPLATE,
                dedup_key=f"alert:{alert.pk}:{event}:{stamp}:{tag}"[:200],
                context=context,
            )
            for channel, recipient, tag in targets
        ]
    return items


def alert_context(alert: Alert, event: str) -> dict[str, Any]:
    """What the templates show (the webhook's structured `fields` and a few words more)."""
    run = alert.resolved_by if event == "resolved" else (alert.last_run or alert.first_run)
    if run is not None:
        path = reverse("admin:jobs_jobrun_change", args=[run.pk])
    else:  # a slot that never started has no run: the job's history
        path = f"{reverse('admin:jobs_jobrun_changelist')}?job={alert.job}"
    link = f"{str(jobs_settings.ALERT_BASE_URL).rstrip('/')}{path}"
    fields = {
        "event": event,
        "alert_id": alert.pk,
        "job": alert.job,
        "kind": alert.kind,
        "status": "resolved" if event == "resolved" else alert.kind,
        "run_id": run.pk if run else None,
        "run_status": run.status if run else None,
        "reason": alert.reason,
        "count": alert.count,
        "url": link,
    }
    return {
        **fields,
        "kind_label": alert.get_kind_display(),
        "opened_at": alert.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
        "link": link,
        "fields": fields,
    }


_watch_lock = threading.Lock()
_last_watch = -1e9
_fallback: threading.Thread | None = None


def watch_from_web() -> bool:
    """/health/'s share of the watchdog: a scan at most every ALERT_WATCH_SECONDS per
    process, and delivery of alert rows no cluster delivered. True when it ran (never
    raises: the health page answers whatever happens here)."""
    global _last_watch
    now = time.monotonic()
    with _watch_lock:
        if now - _last_watch < int(jobs_settings.ALERT_WATCH_SECONDS):
            return False
        _last_watch = now
    try:
        scan_alerts()
        if stranded_alerts().exists():
            _start_fallback()
    except Exception:
        logger.exception("alerts: the /health/ watchdog failed")
    return True


def stranded_alerts():
    """Alert rows still waiting ALERT_FALLBACK_SECONDS after they were due: the
    notifications cluster is not delivering."""
    due_before = timezone.now() - timedelta(seconds=int(jobs_settings.ALERT_FALLBACK_SECONDS))
    return Notification.objects.filter(
        template=TEMPLATE, status=Notification.Status.PENDING, next_attempt_at__lt=due_before
    )


def deliver_stranded_alerts() -> dict[str, int]:
    """Deliver the stranded alert rows here (the outbox's own claim: never sent twice)."""
    due_before = timezone.now() - timedelta(seconds=int(jobs_settings.ALERT_FALLBACK_SECONDS))
    return deliver_due_notifications(
        template=TEMPLATE, due_before=due_before, time_budget_seconds=30
    )


def _start_fallback() -> None:
    global _fallback
    with _watch_lock:
        if _fallback is not None and _fallback.is_alive():
            return
        _fallback = threading.Thread(target=_fallback_delivery, name="alert-fallback", daemon=True)
        _fallback.start()


def _fallback_delivery() -> None:
    try:
        counts = deliver_stranded_alerts()
        logger.warning("alerts: delivered by the web process (no cluster did): %s", counts)
    except Exception:
        logger.exception("alerts: fallback delivery failed")
    finally:
        connection.close()
