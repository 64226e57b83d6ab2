"""manage.py process_webhook_event ID: act on a stored payment event again."""

from typing import Any

from django.core.management.base import CommandError

from commerce.models import WebhookEvent
from jobs.commands import JobCommand


class Command(JobCommand):
    help = (
        "Process a stored payment-provider event again (after a restock, or a fixed"
        " subscription id). Safe: an order already made is found, not made twice."
    )
    job_name = "commerce.process_webhook_event"
    skipped_is_error = True

    def add_arguments(self, parser) -> None:
        parser.add_argument("event", help="WebhookEvent id (admin) or provider event id")
        parser.set_defaults(dry_run=False)  # no preview: processing is the only action

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        value = options["event"]
        events = WebhookEvent.objects.filter(event_id=value)
        if value.isdigit():
            events = events | WebhookEvent.objects.filter(pk=int(value))
        event = events.first()
        if event is None:
            raise CommandError(f"no webhook event {value!r}", returncode=2)
        return {"event_id": event.pk}
