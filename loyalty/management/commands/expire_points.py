"""manage.py expire_points: run the daily expiration now (or preview it with --dry-run)."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.cli_types import object_id
from jobs.commands import lock_held_error
from jobs.models import JobRun
from jobs.runner import run_job_now
from loyalty.models import LoyaltyProgram


class Command(BaseCommand):
    help = (
        "Send 14-day warnings and expire points of inactive cards now, as the 02:00 UTC job "
        "does. Use after a missed night or to re-run one program; --dry-run only counts."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--program", type=object_id, help="only this LoyaltyProgram id")
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be warned and expired"
        )

    def handle(self, *args: Any, program: int | None, dry_run: bool, **options: Any) -> None:
        if program is not None:
            found = LoyaltyProgram.objects.filter(pk=program).first()
            if found is None:
                raise CommandError(f"no loyalty program with id {program}", returncode=2)
            if not found.is_active or not found.points_expiration_days:
                raise CommandError(
                    f"program {program} does not expire points (inactive or no expiration days)",
                    returncode=2,
                )
        run = run_job_now(
            "loyalty.expire_points",
            kwargs={"program_id": program, "dry_run": dry_run},
            triggered_by="manage.py expire_points",
        )
        self.stdout.write(f"run #{run.pk} {run.status}: {json.dumps(run.result)}")
        if (held := lock_held_error(run)) is not None:
            raise held  # exit 3, naming the run that holds the lock
        if run.status != JobRun.Status.SUCCEEDED:
            raise CommandError(f"run #{run.pk} {run.status}: {run.error or run.result}")
        if run.result.get("failed_program_ids"):
            raise CommandError(
                f"run #{run.pk}: programs {run.result['failed_program_ids']} skipped (their data"
                f" cannot be processed): {run.attention_reason}",
                returncode=1,
            )
