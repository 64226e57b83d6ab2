"""Shared shape of every job command: check input, run the job in-process, report.

The run goes through jobs.runner.run_job_now, so a command run leaves a JobRun in
history (trigger `command`) exactly like a scheduled one. Bad input is refused before
the run (one line, exit 2, nothing recorded); a failed run exits 1. Progress the job
reports is shown while it runs: a bar on a terminal, plain lines otherwise.
"""

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.arguments import check_job_arguments
from jobs.context import watching_progress
from jobs.exceptions import BadJobArguments
from jobs.models import JobRun
from jobs.progress import ProgressPrinter
from jobs.runner import run_job_now


def command_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli"


class JobCommand(BaseCommand):
    """Run one job; `--dry-run` reports what would change and changes nothing."""

    job_name: str = ""
    #: A skipped run (its lock held by another run) did not do the work asked for.
    skipped_is_error: bool = False

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
        try:
            check_job_arguments(self.job_name, kwargs)
        except BadJobArguments as exc:
            raise CommandError(str(exc), returncode=2) from None
        printer = ProgressPrinter(label=self.job_name, stream=self.stdout._out)
        try:
            with watching_progress(lambda run, progress: printer.update(progress)):
                run = run_job_now(
                    self.job_name,
                    kwargs=kwargs,
                    trigger=JobRun.Trigger.COMMAND,
                    triggered_by=command_user(),
                )
        finally:
            printer.finish()
        line = f"{self.job_name} run #{run.pk} {run.status}: {json.dumps(run.result, default=str)}"
        if run.status == JobRun.Status.FAILED:
            raise CommandError(f"{line} {run.error}", returncode=1)
        if run.status == JobRun.Status.SKIPPED and self.skipped_is_error:
            raise CommandError(line, returncode=1)
        self.stdout.write(line)
