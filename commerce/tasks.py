"""Job entry points of the commerce app (thin: each calls one service)."""

from datetime import date
from typing import Annotated, Any

from commerce.models import Subscription, WebhookEvent
from commerce.services.audit import job_actor
from commerce.services.cleanup import (
    cleanup_expired_carts,
    cleanup_expired_tokens,
    cleanup_old_audit_logs,
)
from commerce.services.reminders import send_subscription_renewal_reminders
from commerce.services.subscriptions import process_due_subscriptions
from commerce.services.webhooks import process_event
from jobs.arguments import IsoDate, Range
from jobs.exceptions import BadJobArguments
from jobs.registry import job

#: A day an operator types (YYYY-MM-DD): from 2000-01-01 to a year ahead, never 9999-12-31.
Day = Annotated[str, IsoDate()]


def check_subscription_ids(kwargs: dict[str, Any]) -> None:
    """Every subscription asked for exists (the command's --subscription, the admin's)."""
    ids = kwargs.get("subscription_ids") or []
    found = set(Subscription.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise BadJobArguments(f"no subscription with id {missing[0]}")


def check_event_exists(kwargs: dict[str, Any]) -> None:
    if not WebhookEvent.objects.filter(pk=kwargs["event_id"]).exists():
        raise BadJobArguments(f"no webhook event {kwargs['event_id']}")


def _day(value: str | None) -> date | None:
    """The `Day` argument as a date (its format and range were checked before the run)."""
    return None if value is None else date.fromisoformat(value)


#: Days of retention a cleanup may be asked for (1 day to 100 years).
RetentionDays = Annotated[int, Range(min=1, max=36500)]


#: The nightly clean-ups: short, retried, and run once late after a night missed.
_CLEANUP: dict[str, Any] = {"retry": True, "run_late_once": True}


@job(
    "commerce.process_due_subscriptions",
    cron="0 0 * * *",
    cluster="subscriptions",
    retry=True,
    timeout_seconds=900,
    run_late_once=True,  # a night missed while the cluster was down still runs, late
    permissions=("commerce.change_subscription",),  # as the admin's "Process now"
    validate=check_subscription_ids,
)
def process_due_subscriptions_task(
    *,
    date: Day | None = None,
    subscription_ids: list[int] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Turn every active subscription due today or earlier into an order (stock permitting)."""
    return process_due_subscriptions(
        as_of=_day(date), subscription_ids=subscription_ids, dry_run=dry_run
    )


@job(
    "commerce.send_subscription_renewal_reminders",
    cron="0 0 * * *",  # with the order run: 24 hours before the run that makes the delivery
    cluster="subscriptions",
    retry=True,
    timeout_seconds=600,
    run_late_once=True,
    permissions=("commerce.change_subscription",),
)
def send_subscription_renewal_reminders_task(
    *, date: Day | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Email a reminder for every subscription due tomorrow, once per delivery date."""
    return send_subscription_renewal_reminders(as_of=_day(date), dry_run=dry_run)


@job(
    "commerce.cleanup_expired_carts",
    cron="0 2 * * *",
    permissions=("commerce.delete_cart",),
    **_CLEANUP,
)
def cleanup_expired_carts_task(
    *, older_than_days: RetentionDays | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Delete carts not updated for 30 days (COMMERCE_CART_RETENTION_DAYS), empty ones first."""
    return cleanup_expired_carts(older_than_days=older_than_days, dry_run=dry_run)


@job(
    "commerce.cleanup_expired_tokens",
    cron="0 3 * * *",
    permissions=("commerce.delete_expiringtoken",),
    **_CLEANUP,
)
def cleanup_expired_tokens_task(*, dry_run: bool = False) -> dict[str, Any]:
    """Delete expired tokens and tokens used more than a day ago, counted per kind."""
    return cleanup_expired_tokens(dry_run=dry_run)


@job(
    "commerce.cleanup_old_audit_logs",
    permissions=("commerce.delete_auditlog",),
    **_CLEANUP,
)
def cleanup_old_audit_logs_task(
    *, older_than_days: RetentionDays | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Delete audit rows older than 90 days (COMMERCE_AUDIT_RETENTION_DAYS). Not scheduled
    by default: JOBS_SCHEDULES turns it on (docs/commerce.md)."""
    return cleanup_old_audit_logs(older_than_days=older_than_days, dry_run=dry_run)


@job(
    "commerce.process_webhook_event",
    cluster="subscriptions",
    lock_key=lambda kwargs: f"commerce.webhook_event:{kwargs.get('event_id')}",
    retry=True,
    timeout_seconds=300,
    permissions=("commerce.change_webhookevent",),  # as the admin's "Process again"
    validate=check_event_exists,
)
def process_webhook_event_task(*, event_id: Annotated[int, Range(min=1)]) -> dict[str, Any]:
    """Act on one stored payment-provider event (charged: order; payment failed: email)."""
    return process_event(event_id=event_id, actor=job_actor("webhook"))
