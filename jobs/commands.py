"""Shared shape of every job command: check input, run the job in-process, report.

The run goes through jobs.runner.run_job_now, so a command run leaves a JobRun in
history (trigger `command`) exactly like a scheduled one. Bad input is refused before
the run (one line, exit 2, nothing recorded); a failed run exits 1; a run whose lock
another live run holds exits 3 and names the holder (run, host, pid, heartbeat age,
when the lease frees). Progress the job
reports is shown while it runs: a bar on a terminal, plain lines otherwise.
"""

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.arguments import check_job_arguments
from jobs.context import watching_progress
from jobs.exceptions import BadJobArguments
from jobs.lock_holders import LOCK_HELD_EXIT_CODE
from jobs.models import JobRun
from jobs.progress import ProgressPrinter
from jobs.runner import run_job_now


def command_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli"


def lock_held_error(run: JobRun) -> CommandError | None:
    """Exit 3 naming the holder, when the run was skipped because a live run holds its lock."""
    result = run.result if isinstance(run.result, dict) else {}
    if run.status != JobRun.Status.SKIPPED or "lock_held" not in result:
        return None
    return CommandError(
        f"{run.job} run #{run.pk} skipped: {result['reason']}", returncode=LOCK_HELD_EXIT_CODE
    )


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
        if (held := lock_held_error(run)) is not None:
            raise held
        if run.status == JobRun.Status.SKIPPED and self.skipped_is_error:
            raise CommandError(line, returncode=1)
        self.stdout.write(line)
