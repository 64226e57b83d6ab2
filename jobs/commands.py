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
from jobs.exceptions import BadJobArguments, UnknownJob
from jobs.lifecycle import LOCK_HELD_EXIT_CODE
from jobs.models import JobRun
from jobs.progress import ProgressPrinter
from jobs.runner import run_job_now


def command_user() -> str:
    """What `triggered_by` records for a run started from the command line: `cli:<login>`."""
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
    """Run one job; `--dry-run` reports what would change and changes nothing.

    A subclass names its job (`job_name`, or `get_job_name` for a generic command), adds
    its options, and turns them into the job's kwargs in `job_kwargs`, raising
    `CommandError(..., returncode=2)` on bad input before anything is written.
    """

    job_name: str = ""
    #: A skipped run (its lock held by another run) did not do the work asked for.
    skipped_is_error: bool = False
    #: Offer `--dry-run` (passed to the job as `dry_run=True`).
    dry_run_option: bool = True

    def add_arguments(self, parser) -> None:
        if self.dry_run_option:
            parser.add_argument(
                "--dry-run", action="store_true", help="Report what would change; change nothing."
            )

    def get_job_name(self, options: dict[str, Any]) -> str:
        return self.job_name

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        """The job's kwargs from the options; raise CommandError(returncode=2) on bad input."""
        return {}

    def handle(self, *args: Any, **options: Any) -> None:
        name = self.get_job_name(options)
        kwargs = self.job_kwargs(options)
        if options.get("dry_run"):
            kwargs["dry_run"] = True
        self.check_job(name, kwargs)
        printer = ProgressPrinter(label=name, stream=self.stdout._out)
        try:
            with watching_progress(lambda run, progress: printer.update(progress)):
                run = run_job_now(
                    name,
                    kwargs=kwargs,
                    trigger=JobRun.Trigger.COMMAND,
                    triggered_by=command_user(),
                )
        finally:
            printer.finish()
        self.report(run)

    @staticmethod
    def check_job(name: str, kwargs: dict[str, Any]) -> None:
        """Refuse an unknown job, arguments it does not take or values its own rule
        refuses (jobs.arguments.check_job_arguments): one line, exit 2, nothing recorded."""
        try:
            check_job_arguments(name, kwargs)
        except (UnknownJob, BadJobArguments) as exc:
            raise CommandError(str(exc), returncode=2) from None

    def report(self, run: JobRun) -> None:
        """One line; exit 1 when the run failed (or was skipped, if that is an error here)."""
        line = f"{run.job} run #{run.pk} {run.status}: {json.dumps(run.result, default=str)}"
        if run.status == JobRun.Status.FAILED:
            raise CommandError(f"{line} {run.error}", returncode=1)
        if (held := lock_held_error(run)) is not None:
            raise held
        if run.status == JobRun.Status.SKIPPED and self.skipped_is_error:
            raise CommandError(line, returncode=1)
        self.stdout.write(line)
