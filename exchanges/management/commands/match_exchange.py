"""manage.py match_exchange ID [--dry-run]."""

from typing import Any

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = (
        "Draw names for a draft or registration_open exchange: notify each giver, plan"
        " reminders. Runs the job exchanges.match_exchange here and records it in the job"
        " history. --dry-run checks that a draw exists and changes nothing."
    )
    job_name = "exchanges.match_exchange"
    skipped_is_error = True  # another draw of this exchange holds its lock

    def add_arguments(self, parser) -> None:
        parser.add_argument("exchange_id")
        super().add_arguments(parser)

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"exchange_id": options["exchange_id"]}
