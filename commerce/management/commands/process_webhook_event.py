"""manage.py process_webhook_event ID: act on a stored payment event again."""

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import CommandError

from commerce.models import WebhookEvent
from jobs.cli_types import object_id
from jobs.commands import JobCommand


class Command(JobCommand):
    help = (
        "Process a stored payment-provider event again (after a restock, or a fixed"
        " subscription id). Safe: an order already made is found, not made twice."
    )
    job_name = "commerce.process_webhook_event"
    skipped_is_error = True
    dry_run_option = False  # no preview: processing is the only action

    def add_arguments(self, parser) -> None:
        parser.add_argument("event", help="WebhookEvent id (admin) or provider event id")
        super().add_arguments(parser)

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        value = options["event"]
        events = WebhookEvent.objects.filter(event_id=value)
        try:  # only ASCII digits within a bigint can be a row id ("²".isdigit() is true)
            events = events | WebhookEvent.objects.filter(pk=object_id(value))
        except ArgumentTypeError:
            pass
        event = events.first()
        if event is None:
            raise CommandError(f"no webhook event {value!r}", returncode=2)
        return {"event_id": event.pk}
