"""manage.py process_webhook_event ID: act on a stored payment event again."""

from typing import Any

from django.core.management.base import CommandError

from commerce.models import WebhookEvent
from jobs.cli.commands import JobCommand
from jobs.cli.types import ascii_digits


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
        """The provider's event id names its row; else the text is the row id (whether that
        row exists is the job's check)."""
        value = options["event"]
        pk = WebhookEvent.objects.filter(event_id=value).values_list("pk", flat=True).first()
        if pk is not None:
            return {"event_id": pk}
        if not ascii_digits(value):
            raise CommandError(f"no webhook event {value!r}", returncode=2)
        return {"event_id": value}
