"""The notification outbox: queue rows with the change that causes them, deliver them once.

Queueing renders the templates right away, so the row records exactly what is sent,
and a unique dedup key makes queueing the same notification twice a no-op. Delivery
claims due rows with FOR UPDATE SKIP LOCKED, so two delivery tasks never send one
row; failures back off by the default retry policy until the row is `dead`.
"""

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobs import sql
from jobs.conf import jobs_settings
from jobs.models import JobRun, Notification
from jobs.retry import DEFAULT_RETRY, RetryPolicy
from jobs.services.notification_render import ColumnKind, NotificationRenderer
from jobs.sms import get_sms_backend

logger = logging.getLogger("jobs.outbox")

DELIVER_JOB = "jobs.deliver_notifications"
INSERT_CHUNK = 5000


@dataclass(frozen=True, kw_only=True)
class OutgoingNotification:
    #: "email" or "sms".
    channel: str
    #: Email address or phone number.
    recipient: str
    #: Template base name, e.g. "loyalty/notifications/points_expiring".
    template: str
    #: Unique per logical notification, e.g. "points_expiring:card:42:2026-11-23".
    dedup_key: str
    context: dict[str, Any] = field(default_factory=dict)


def render_notification(
    item: OutgoingNotification, renderer: NotificationRenderer | None = None
) -> tuple[str, str]:
    """(subject, body) from `<template>.subject.txt` + `<template>.txt`, or `<template>.sms.txt`."""
    renderer = renderer or NotificationRenderer()
    if item.channel == Notification.Channel.SMS:
        return "", renderer.render(f"{item.template}.sms.txt", item.context).strip()
    if item.channel != Notification.Channel.EMAIL:
        raise ValueError(f"unknown channel {item.channel!r}")
    subject = " ".join(renderer.render(f"{item.template}.subject.txt", item.context).split())
    return subject[:255], renderer.render(f"{item.template}.txt", item.context)


def queue_notifications(items: Iterable[OutgoingNotification], *, kick: bool = True) -> int:
    """Insert outbox rows, one statement per chunk; returns how many were new.

    Call inside the transaction that makes the change: the rows commit or roll back
    with it. Delivery is kicked after commit.
    """
    renderer = NotificationRenderer()
    now = timezone.now()
    created = 0
    columns: list[list[str]] = [[] for _ in range(6)]

    def flush() -> None:
        nonlocal created
        if not columns[0]:
            return
        names = ("channel", "recipient", "template", "subject", "body", "dedup_key")
        params: dict[str, Any] = dict(zip(names, columns, strict=True))
        params.update(max_attempts=DEFAULT_RETRY.max_attempts, now=now)
        with connection.cursor() as cursor:
            cursor.execute(sql.QUEUE_NOTIFICATIONS, params)
            created += cursor.rowcount
        for column in columns:
            column.clear()

    for item in items:
        subject, body = render_notification(item, renderer)
        values = (item.channel, item.recipient, item.template, subject, body, item.dedup_key)
        for column, value in zip(columns, values, strict=True):
            column.append(value)
        if len(columns[0]) >= INSERT_CHUNK:
            flush()
    flush()
    if created and kick:
        transaction.on_commit(kick_delivery)
    return created


#: Every character Python's str.split()/strip() treat as whitespace (tests check the list):
#: subjects collapse and SMS bodies strip the same way in SQL as in `render_notification`.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def outbox_insert_sql(
    *,
    source: str,
    template: str,
    columns: Mapping[str, ColumnKind],
    constants: Mapping[str, Any],
    renderer: NotificationRenderer | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """An INSERT of outbox rows rendered in SQL from the rows of `source`, or None.

    For a set-based job that writes its outbox rows in the statement that makes the
    change (a data-modifying CTE), so the rows never travel through Python. `source`
    (a CTE name) has the columns `channel` ('email', 'sms', or NULL: nobody to tell),
    `recipient`, `dedup_key`, and one per context key in `columns`, never NULL. The
    text is exactly what `render_notification` gives; the statement returns one row
    per new notification. None when a template needs the engine (tags, filters) or
    cannot be loaded: the caller then renders in Python with `queue_notifications`,
    which reports the template error. Kick delivery after commit (`kick_delivery`).
    """
    suffixes = {"subject": ".subject.txt", "body": ".txt", "sms": ".sms.txt"}
    try:
        renderer = renderer or NotificationRenderer()
        rendered = {
            part: renderer.sql_expression(
                template + suffix,
                columns=columns,
                constants=constants,
                alias="s",
                param_prefix=f"outbox_{part}",
            )
            for part, suffix in suffixes.items()
        }
    except Exception:  # missing or broken template: the Python path reports it
        return None
    if any(expression is None for expression in rendered.values()):
        return None
    params: dict[str, Any] = {
        "outbox_template": template,
        "outbox_whitespace": WHITESPACE,
        "outbox_whitespace_runs": f"[{WHITESPACE}]+",
        "outbox_max_attempts": DEFAULT_RETRY.max_attempts,
        "outbox_now": timezone.now(),
    }
    for expression in rendered.values():
        params.update(expression.params)
    subject = (
        f"left(regexp_replace(btrim({rendered['subject'].sql}, %(outbox_whitespace)s),"
        " %(outbox_whitespace_runs)s, ' ', 'g'), 255)"
    )
    sms = f"btrim({rendered['sms'].sql}, %(outbox_whitespace)s)"
    if not all(name.isidentifier() for name in source.split(".")):
        raise ValueError(f"not a relation name: {source!r}")
    statement = f"""
    INSERT INTO jobs_notification
           (channel, recipient, template, subject, body, dedup_key, status, attempts,
            max_attempts, next_attempt_at, last_error, created_at, requeued_by)
    SELECT s.channel, s.recipient, %(outbox_template)s,
           CASE WHEN s.channel = 'email' THEN {subject} ELSE '' END,
           CASE WHEN s.channel = 'email' THEN {rendered["body"].sql} ELSE {sms} END,
           s.dedup_key, 'pending', 0, %(outbox_max_attempts)s, %(outbox_now)s, '',
           %(outbox_now)s, ''
      FROM {source} s
     WHERE s.channel IN ('email', 'sms')
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING 1"""
    return statement, params


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
) -> dict[str, int]:
    """Send due notifications in claimed batches until none are due or the budget is spent."""
    batch_size = batch_size or int(jobs_settings.OUTBOX_BATCH_SIZE)
    counts = {"sent": 0, "retrying": 0, "dead": 0}
    deadline = time.monotonic() + time_budget_seconds
    sms_backend = get_sms_backend()
    mail = get_connection(fail_silently=False)
    tried: list[int] = []
    while time.monotonic() < deadline:
        ids = _claim_batch(batch_size, exclude=tried)
        tried.extend(ids)
        if not ids:
            break
        for row in Notification.objects.filter(pk__in=ids).order_by("id"):
            try:
                if row.channel == Notification.Channel.SMS:
                    sms_backend.send(to=row.recipient, body=row.body)
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


def _claim_batch(limit: int, *, exclude: list[int]) -> list[int]:
    now = timezone.now()
    stale = now - timedelta(seconds=int(jobs_settings.OUTBOX_SENDING_TIMEOUT_SECONDS))
    with connection.cursor() as cursor:
        cursor.execute(
            sql.CLAIM_NOTIFICATIONS,
            {"now": now, "stale_before": stale, "limit": limit, "exclude": exclude},
        )
        return [row[0] for row in cursor.fetchall()]


def _record_delivery_failure(row: Notification, exc: Exception, policy: RetryPolicy) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    attempts_policy = RetryPolicy(
        max_attempts=row.max_attempts,
        base_seconds=policy.base_seconds,
        cap_seconds=policy.cap_seconds,
        jitter=policy.jitter,
    )
    delay = attempts_policy.delay_for(attempt=row.attempts, error=exc)
    if delay is None:
        Notification.objects.filter(pk=row.pk).update(
            status=Notification.Status.DEAD, last_error=error
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
    """Give dead or failed rows a fresh set of attempts; returns how many were requeued.

    Failed: pending again after a failed attempt (it has an error). The state is checked
    in the UPDATE itself, so a row a delivery task claimed meanwhile (`sending`) or sent
    is left alone: PostgreSQL re-checks the WHERE on a row another transaction just
    changed, and putting a row being sent back to pending would send it twice.
    """
    count = (
        Notification.objects.filter(pk__in=list(ids))
        .filter(
            Q(status=Notification.Status.DEAD)
            | Q(status=Notification.Status.PENDING, last_error__gt="")
        )
        .update(
            status=Notification.Status.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            requeued_by=actor[:150],
        )
    )
    if count:
        transaction.on_commit(kick_delivery)
    return count
