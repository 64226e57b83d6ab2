"""manage.py expire_points [--program ID] [--dry-run]: run the daily expiration now."""

from typing import Any

from django.core.management.base import CommandError

from jobs.cli.commands import JobCommand
from jobs.models import JobRun


class Command(JobCommand):
    help = (
        "Warn cards due for expiration and expire warned ones now, as the 02:00 UTC job "
        "does. Use after a missed night or to re-run one program; --dry-run only counts."
    )
    job_name = "loyalty.expire_points"
    skipped_is_error = True  # a skipped run expired nothing

    def add_arguments(self, parser) -> None:
        parser.add_argument("--program", help="only this LoyaltyProgram id")
        super().add_arguments(parser)

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        program = options["program"]
        return {} if program is None else {"program_id": program}

    def report(self, run: JobRun) -> None:
        """As every job command; also exit 1 naming the programs the run skipped (their
        data cannot be processed; the other programs are done)."""
        super().report(run)
        skipped = (run.result or {}).get("failed_program_ids")
        if skipped:
            raise CommandError(
                f"run #{run.pk}: programs {skipped} skipped (their data cannot be processed):"
                f" {run.attention_reason}",
                returncode=1,
            )
