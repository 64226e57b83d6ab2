"""The notification outbox: rows queued with the change that causes them, rendered at once,
delivered once (docs/jobs-core.md "Notifications")."""

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import F, Q
from django.template import Context, Engine, Template, engines
from django.utils import timezone

from jobs import sql
from jobs.conf import jobs_settings
from jobs.models import JobRun, Notification
from jobs.outbox.alert_webhook import post_alert_webhook
from jobs.runs.retry import DEFAULT_RETRY, RetryPolicy
from jobs.sms import get_sms_backend

logger = logging.getLogger("jobs.outbox")

DELIVER_JOB = "jobs.deliver_notifications"


@dataclass(frozen=True, kw_only=True)
class OutgoingNotification:
    #: "email", "sms" or "webhook".
    channel: str
    #: Email address or phone number.
    recipient: str
    #: Template base name, e.g. "loyalty/notifications/points_expiring".
    template: str
    #: Unique per logical notification, e.g. "points_expiring:card:42:2026-11-23".
    dedup_key: str
    context: dict[str, Any] = field(default_factory=dict)
    #: Never delivered after this moment (dead, "too late"): a reminder of an event, a
    #: warning of a date. None: no limit.
    deliver_before: datetime | None = None


def notification_engine() -> Engine:
    """The `notifications` template engine: Django's, with autoescape off (plain text)."""
    return engines["notifications"].engine


def render_notification(
    item: OutgoingNotification, *, get_template: Callable[[str], Template] | None = None
) -> tuple[str, str]:
    """(subject, body); for a webhook a JSON body {"text": ..., **context["fields"]}. Without
    localization: digits any customer reads, and half the time of a large batch (bench/)."""
    engine = notification_engine()
    get_template = get_template or engine.get_template
    context = Context(item.context, autoescape=engine.autoescape, use_l10n=False)
    if item.channel == Notification.Channel.SMS:
        return "", get_template(f"{item.template}.sms.txt").render(context).strip()
    if item.channel == Notification.Channel.WEBHOOK:
        # Slack-compatible: "text" is what a chat shows; the context's `fields` ride along.
        text = get_template(f"{item.template}.webhook.txt").render(context).strip()
        return "", json.dumps({"text": text, **item.context.get("fields", {})}, default=str)
    if item.channel != Notification.Channel.EMAIL:
        raise ValueError(f"unknown channel {item.channel!r}")
    subject = get_template(f"{item.template}.subject.txt").render(context)
    body = get_template(f"{item.template}.txt").render(context)
    return " ".join(subject.split())[:255], body


class RenderedNotification(NamedTuple):
    """An outbox row's text, rendered: what `queue_rendered` inserts (in COPY column order)."""

    channel: str
    recipient: str
    template: str
    subject: str
    body: str
    dedup_key: str
    deliver_before: datetime | None


def render_notifications(items: Iterable[OutgoingNotification]) -> list[RenderedNotification]:
    """Every item rendered (raises on the first that does not); no database, so a caller
    may render a batch on another thread while its connection works."""
    get_template = functools.cache(notification_engine().get_template)  # once per batch
    return [
        RenderedNotification(
            item.channel,
            item.recipient,
            item.template,
            *render_notification(item, get_template=get_template),
            item.dedup_key,
            item.deliver_before,
        )
        for item in items
    ]


def queue_notifications(items: Iterable[OutgoingNotification], *, kick: bool = True) -> int:
    """Render and insert outbox rows, inside the transaction of the change; returns how many
    were new (a known dedup key is skipped). Delivery is kicked after commit."""
    return queue_rendered(render_notifications(items), kick=kick)


def queue_rendered(rows: Iterable[RenderedNotification], *, kick: bool = True) -> int:
    """Insert rendered outbox rows (see `queue_notifications`): COPY into a staging table,
    then one INSERT, as COPY alone cannot skip known keys."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.CREATE_OUTBOX_STAGE)
        with cursor.copy(sql.COPY_OUTBOX_STAGE) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            sql.QUEUE_STAGED_NOTIFICATIONS,
            {"max_attempts": DEFAULT_RETRY.max_attempts, "now": timezone.now()},
        )
        created = cursor.rowcount
    if created and kick:
        transaction.on_commit(kick_delivery)
    return created


def queue_notification(item: OutgoingNotification) -> bool:
    """Queue one notification; False when its dedup key was already queued."""
    return queue_notifications([item]) == 1


def kick_delivery() -> None:
    """Queue a delivery run now unless one is already waiting (the cron run is the safety net)."""
    from jobs.runner import enqueue_job

    if JobRun.objects.filter(job=DELIVER_JOB, status=JobRun.Status.QUEUED).exists():
        return
    try:
        enqueue_job(DELIVER_JOB, trigger=JobRun.Trigger.CHAIN, triggered_by="outbox")
    except Exception:  # the minutely schedule delivers anyway
        logger.exception("could not kick notification delivery")


def deliver_due_notifications(
    *,
    batch_size: int | None = None,
    time_budget_seconds: float = 240.0,
    policy: RetryPolicy = DEFAULT_RETRY,
    template: str | None = None,
    due_before: datetime | None = None,
) -> dict[str, int]:
    """Send due notifications in claimed batches until none are due or the budget is spent;
    a row past its `deliver_before` is dead, "too late", checked again just before its send.
    `template` and `due_before` narrow it (the alerts' web fallback)."""
    batch_size = batch_size or int(jobs_settings.OUTBOX_BATCH_SIZE)
    counts = {"sent": 0, "retrying": 0, "dead": 0, "too_late": _expire_late()}
    counts["dead"] = _expire_lost()
    deadline = time.monotonic() + time_budget_seconds
    # Loaded at the first SMS: a mistyped SMS_BACKEND fails the SMS rows, not every email.
    sms_backend = functools.cache(get_sms_backend)
    mail = get_connection(fail_silently=False)
    tried: list[int] = []
    while time.monotonic() < deadline:
        ids = _claim_batch(batch_size, exclude=tried, template=template, due_before=due_before)
        if not ids:
            break
        tried.extend(ids)
        for row in Notification.objects.filter(pk__in=ids).order_by("id"):
            if time.monotonic() >= deadline:
                # A batch of slow sends must not outlive the job's hard limit: the rest
                # is handed back untried, for the next run.
                _release_claims(ids, after=row.pk)
                break
            if row.deliver_before is not None and row.deliver_before <= timezone.now():
                counts["too_late"] += Notification.objects.filter(
                    pk=row.pk, status=Notification.Status.SENDING
                ).update(
                    status=Notification.Status.DEAD,
                    dead_reason=Notification.DeadReason.TOO_LATE,
                    last_error="too late: its deadline passed while its batch was being sent",
                )
                continue
            try:
                if row.channel == Notification.Channel.SMS:
                    sms_backend().send(to=row.recipient, body=row.body)
                elif row.channel == Notification.Channel.WEBHOOK:
                    post_alert_webhook(row.body)
                else:
                    EmailMessage(
                        row.subject,
                        row.body,
                        settings.DEFAULT_FROM_EMAIL,
                        [row.recipient],
                        connection=mail,
                    ).send()
            except Exception as exc:
                counts[_record_delivery_failure(row, exc, policy)] += 1
                continue
            Notification.objects.filter(pk=row.pk, status=Notification.Status.SENDING).update(
                status=Notification.Status.SENT, sent_at=timezone.now(), last_error=""
            )
            counts["sent"] += 1
    return counts


def _claim_batch(
    limit: int,
    *,
    exclude: list[int],
    template: str | None = None,
    due_before: datetime | None = None,
) -> list[int]:
    now = timezone.now()
    params = {"now": now, "due_before": due_before or now, "template": template}
    params.update(stale_before=_stale_before(now), limit=limit, exclude=exclude)
    return [row[0] for row in sql.fetch(sql.CLAIM_NOTIFICATIONS, params)]


def _release_claims(ids: list[int], *, after: int) -> None:
    """Put claimed rows from `after` on back to `pending`, their claim's attempt undone."""
    Notification.objects.filter(
        pk__in=ids, pk__gte=after, status=Notification.Status.SENDING
    ).update(status=Notification.Status.PENDING, attempts=F("attempts") - 1)


def _stale_before(now: datetime) -> datetime:
    """Rows `sending` since before this were claimed by a delivery that died: due again."""
    return now - timedelta(seconds=int(jobs_settings.OUTBOX_SENDING_TIMEOUT_SECONDS))


def _expire_late() -> int:
    """Mark waiting rows past their deadline dead, "too late"."""
    now = timezone.now()
    params = {"now": now, "stale_before": _stale_before(now)}
    late = len(sql.fetch(sql.EXPIRE_LATE_NOTIFICATIONS, params))
    if late:
        logger.warning("%s notification(s) dead: too late to deliver", late)
    return late


def _expire_lost() -> int:
    """Mark rows dead whose worker died while sending their last attempt."""
    lost = sql.fetch(sql.EXPIRE_LOST_NOTIFICATIONS, {"stale_before": _stale_before(timezone.now())})
    for (pk,) in lost:
        logger.error("notification %s is dead: its worker died while sending its last attempt", pk)
    return len(lost)


def _record_delivery_failure(row: Notification, exc: Exception, policy: RetryPolicy) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    delay = replace(policy, max_attempts=row.max_attempts).delay_for(
        attempt=row.attempts, error=exc
    )
    if delay is None:
        Notification.objects.filter(pk=row.pk).update(
            status=Notification.Status.DEAD,
            dead_reason=Notification.DeadReason.FAILED,
            last_error=error,
        )
        logger.error("notification %s is dead after %s attempts: %s", row.pk, row.attempts, error)
        return "dead"
    Notification.objects.filter(pk=row.pk).update(
        status=Notification.Status.PENDING,
        last_error=error,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    logger.warning("notification %s failed (attempt %s): %s", row.pk, row.attempts, error)
    return "retrying"


def requeue_notifications(ids: Iterable[int], *, actor: str) -> int:
    """Give dead or failed (pending with an error) rows a fresh set of attempts, unless past
    their `deliver_before`; returns how many. The state is checked in the UPDATE itself, so a
    row a delivery task claimed meanwhile (`sending`) is left alone: it would be sent twice.
    """
    count = (
        Notification.objects.filter(pk__in=list(ids))
        .filter(
            Q(status=Notification.Status.DEAD)
            | Q(status=Notification.Status.PENDING, last_error__gt="")
        )
        .exclude(deliver_before__lte=timezone.now())
        .update(
            status=Notification.Status.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            requeued_by=actor[:150],
            dead_reason="",
        )
    )
    if count:
        transaction.on_commit(kick_delivery)
    return count
