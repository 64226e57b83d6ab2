"""manage.py send_due_reminders [--exchange ID] [--dry-run]."""

from typing import Any

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = (
        "Send due exchange reminders now (the minutely schedule does this; use it after an"
        " outage or to send one exchange's reminders)."
    )
    job_name = "exchanges.send_due_reminders"

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--exchange", help="Only this exchange's reminders.")

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        exchange_id = options["exchange"]
        return {} if exchange_id is None else {"exchange_id": exchange_id}
