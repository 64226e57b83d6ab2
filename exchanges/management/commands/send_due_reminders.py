"""manage.py send_due_reminders [--exchange ID] [--dry-run]."""

from typing import Any

from django.core.management.base import CommandError

from exchanges.models import Exchange
from jobs.cli_types import object_id
from jobs.commands import JobCommand


class Command(JobCommand):
    help = (
        "Send due exchange reminders now (the minutely schedule does this; use it after an"
        " outage or to send one exchange's reminders)."
    )
    job_name = "exchanges.send_due_reminders"

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--exchange", type=object_id, help="Only this exchange's reminders.")

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        exchange_id = options["exchange"]
        if exchange_id is None:
            return {}
        state = Exchange.objects.filter(pk=exchange_id).values_list("state", flat=True).first()
        if state is None:
            raise CommandError(f"exchange {exchange_id} does not exist", returncode=2)
        if state != Exchange.State.MATCHED:
            raise CommandError(
                f"exchange {exchange_id} is {state}; only matched exchanges send reminders",
                returncode=2,
            )
        return {"exchange_id": exchange_id}
