"""`manage.py demo --only exchanges`: exchanges in five timezones and states, every job run
through the real cluster, the draws included (the clusters are already running when
run_demo is called)."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.sessions.models import Session
from django.db.models import Count
from django.utils import timezone

from devkit.waiting import wait_for_run
from exchanges.models import Exchange, MagicToken, Participant, RateLimit, Reminder
from exchanges.services.purge import purge_day, start_of_day
from jobs.cli.commands import command_user
from jobs.models import JobRun, Notification
from jobs.runner import enqueue_job

PREFIX = "demo: "
JOBS = (
    "exchanges.send_due_reminders",
    "exchanges.auto_complete",
    "exchanges.purge_completed",
    "exchanges.cleanup_tokens",
    "exchanges.cleanup_sessions",
    "exchanges.cleanup_rate_limits",
)


def _exchange(name: str, zone: str, **fields: Any) -> Exchange:
    exchange = Exchange.objects.create(
        name=PREFIX + name, organizer_email="organizer@example.com", timezone=zone, **fields
    )
    Participant.objects.bulk_create(
        Participant(
            exchange=exchange,
            name=n,
            email=f"{n.lower()}.{exchange.pk}@example.com",
            reminder_enabled=n != "Dana",
            withdrawn_at=timezone.now() if n == "Eve" else None,
        )
        for n in ("Alice", "Bob", "Carol", "Dana", "Eve")
    )
    return exchange


def _run(name: str, **kwargs: Any) -> JobRun:
    """Queue a run for the real cluster and wait until it finishes."""
    run = enqueue_job(
        name, kwargs=kwargs, trigger=JobRun.Trigger.COMMAND, triggered_by=command_user()
    )
    return wait_for_run(run.pk, timeout_seconds=30)


def build_data(out: Callable[[str], None]) -> None:
    now = timezone.now()
    Exchange.objects.filter(name__startswith=PREFIX).delete()
    MagicToken.objects.filter(email="demo@example.com").delete()
    RateLimit.objects.filter(key__startswith="demo:").delete()

    ny = _exchange("New York", "America/New_York", exchange_at=now + timedelta(days=1, hours=2))
    berlin = _exchange("Berlin", "Europe/Berlin", exchange_at=now + timedelta(days=3, hours=2))
    tokyo = _exchange("Tokyo", "Asia/Tokyo", exchange_at=now + timedelta(days=8))
    for exchange in (ny, berlin, tokyo):
        run = _run("exchanges.match_exchange", exchange_id=exchange.pk)
        if run.status != JobRun.Status.SUCCEEDED:
            raise RuntimeError(f"demo draw of {exchange.name} {run.status}: {run.error}")
        out(
            f"matched {exchange.name} ({exchange.timezone}): run #{run.pk} {run.status} {run.result}"
        )
    # Pretend the clock moved on: New York's 1-day reminder is due now, Berlin's 3-day
    # reminder is 2 hours overdue (beyond the 1 h grace), Tokyo's date has passed.
    Reminder.objects.filter(exchange=ny, days_before=1).update(due_at=now - timedelta(minutes=1))
    Reminder.objects.filter(exchange=berlin, days_before=3).update(due_at=now - timedelta(hours=2))
    Exchange.objects.filter(pk=tokyo.pk).update(exchange_at=now - timedelta(hours=1))
    # Completed ones: Sydney 31 days ago and warned 8 days ago (purged now), Sao Paulo 24
    # days ago (warned now, purged in 7 days).
    for name, zone, completed_days, warned_days in (
        ("Sydney", "Australia/Sydney", 31, 8),
        ("Sao Paulo", "America/Sao_Paulo", 24, None),
    ):
        done = _exchange(
            name,
            zone,
            exchange_at=now - timedelta(days=completed_days + 1),
            state=Exchange.State.COMPLETED,
            completed_at=now - timedelta(days=completed_days),
        )
        if warned_days is not None:  # as that night's purge run warned it
            warned_at = now - timedelta(days=warned_days)
            day = purge_day(done, now=warned_at, retention_days=30, warning_days=7)
            done.purge_warning_sent_at, done.purge_after = warned_at, start_of_day(day, done)
            done.save(update_fields=["purge_warning_sent_at", "purge_after"])
    MagicToken.objects.bulk_create(
        MagicToken(email="demo@example.com", token_hash=f"demo-{i}", expires_at=now + delta)
        for i, delta in enumerate(
            (timedelta(hours=-2), timedelta(minutes=-1), timedelta(minutes=15))
        )
    )
    Session.objects.filter(session_key__startswith="demo").delete()
    Session.objects.bulk_create(
        Session(session_key=f"demo{i}", session_data="", expire_date=now + timedelta(days=i - 2))
        for i in range(4)
    )
    RateLimit.objects.bulk_create(
        RateLimit(key=f"demo:{i}", count=i, expires_at=now + timedelta(minutes=i - 2))
        for i in range(4)
    )
    for exchange in Exchange.objects.filter(name__startswith=PREFIX):
        out(
            f"  {exchange.name:18} {exchange.state:10} {exchange.local_exchange_at:%Y-%m-%d %H:%M %Z}"
        )


def run_demo(*, out: Callable[[str], None]) -> None:
    build_data(out)
    for name in JOBS:
        run = _run(name)
        out(f"{name:30} run #{run.pk} {run.status}: {json.dumps(run.result, default=str)[:300]}")
    out("reminders:")
    for reminder in Reminder.objects.filter(exchange__name__startswith=PREFIX).select_related(
        "exchange"
    ):
        local = reminder.due_at.astimezone(reminder.exchange.zone)
        out(
            f"  {reminder.exchange.name:14} {reminder.days_before} days before,"
            f" due {local:%Y-%m-%d %H:%M %Z}: {reminder.status} ({reminder.recipients} recipients)"
        )
    notifications = (
        Notification.objects.filter(template__startswith="exchanges/")
        .values("template", "status")
        .annotate(n=Count("id"))
        .order_by("template", "status")
    )
    out("outbox: " + ", ".join(f"{n['template']} {n['status']}: {n['n']}" for n in notifications))
