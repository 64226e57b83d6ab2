"""manage.py match_exchange ID [--dry-run]."""

from typing import Any

from jobs.cli_types import object_id
from jobs.commands import JobCommand


class Command(JobCommand):
    help = (
        "Draw names for a draft or registration_open exchange: notify each giver, plan"
        " reminders. Runs the job exchanges.match_exchange here and records it in the job"
        " history. --dry-run checks that a draw exists and changes nothing."
    )
    job_name = "exchanges.match_exchange"
    skipped_is_error = True  # another draw of this exchange holds its lock

    def add_arguments(self, parser) -> None:
        parser.add_argument("exchange_id", type=object_id)
        super().add_arguments(parser)

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        # Whether the exchange can be drawn: the job's own check (check_job), exit 2.
        return {"exchange_id": options["exchange_id"]}
