"""Shared shape of the exchanges job commands: check input, run the job in-process, report.

The run goes through jobs.runner.run_job_now, so a command run leaves a JobRun in
history (trigger `command`) exactly like a scheduled one.
"""

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.models import JobRun
from jobs.runner import run_job_now


def command_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli"


class JobCommand(BaseCommand):
    """Run one exchanges job; `--dry-run` reports what would change and changes nothing."""

    job_name: str = ""

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; change nothing."
        )

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        """The job's kwargs from the options; raise CommandError(returncode=2) on bad input."""
        return {}

    def handle(self, *args: Any, **options: Any) -> None:
        kwargs = self.job_kwargs(options)
        if options["dry_run"]:
            kwargs["dry_run"] = True
        run = run_job_now(
            self.job_name,
            kwargs=kwargs,
            trigger=JobRun.Trigger.COMMAND,
            triggered_by=command_user(),
        )
        line = f"{self.job_name} run #{run.pk} {run.status}: {json.dumps(run.result, default=str)}"
        if run.status == JobRun.Status.FAILED:
            raise CommandError(f"{line} {run.error}", returncode=1)
        self.stdout.write(line)
