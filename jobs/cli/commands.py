"""The shape of every job command: options to the job's kwargs, run it in-process, report
in one line (exit 2 refused, 1 failed, 3 lock held). docs/architecture.md, "A command"."""

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.arguments import from_text
from jobs.exceptions import BadJobArguments, UnknownJob
from jobs.models import JobRun
from jobs.registry import get_job
from jobs.runner import run_job_now
from jobs.runs.lifecycle import LOCK_HELD_EXIT_CODE
from jobs.runs.progress import ProgressPrinter, watching_progress


def command_user() -> str:
    """What `triggered_by` records for a run started from the command line: `cli:<login>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli"


@contextmanager
def refused_exit_2() -> Iterator[None]:
    """An unknown job or a refused argument: its one line, exit 2 (nothing was recorded)."""
    try:
        yield
    except (UnknownJob, BadJobArguments) as exc:
        raise CommandError(str(exc), returncode=2) from None


class JobCommand(BaseCommand):
    """Run one job (`job_name`) with the kwargs `job_kwargs` maps from the options, as
    typed: checking them is the job's (its annotations and `validate`), never the command's."""

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
        """The job's kwargs from the options, as typed (`from_text` reads them)."""
        return {}

    def before_run(self, name: str, kwargs: dict[str, Any], options: dict[str, Any]) -> None:
        """Called with the job's kwargs before the run (e.g. to ask on the terminal)."""

    def handle(self, *args: Any, **options: Any) -> None:
        name = self.get_job_name(options)
        with refused_exit_2():
            kwargs = self.typed_kwargs(name, options)
            self.before_run(name, kwargs, options)
            # The raw stream (call_command's `stdout`, else the terminal): the bar writes
            # "\r" without the line ending Django's OutputWrapper would add.
            printer = ProgressPrinter(label=name, stream=options.get("stdout") or sys.stdout)
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

    def typed_kwargs(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """`job_kwargs` (and `dry_run`) read as the job's types; UnknownJob for a bad name."""
        kwargs = self.job_kwargs(options)
        if options.get("dry_run"):
            kwargs["dry_run"] = True
        return from_text(name, get_job(name).func, kwargs)

    def report(self, run: JobRun) -> None:
        """One line; exit 1 when the run failed (or was skipped, if that is an error here)."""
        line = f"{run.job} run #{run.pk} {run.status}: {json.dumps(run.result, default=str)}"
        if run.status == JobRun.Status.FAILED:
            raise CommandError(f"{line} {run.error}", returncode=1)
        result = run.result if isinstance(run.result, dict) else {}
        if run.status == JobRun.Status.SKIPPED and "lock_held" in result:
            # A live run holds the job's lock: exit 3 naming the holder.
            raise CommandError(
                f"{run.job} run #{run.pk} skipped: {result['reason']}",
                returncode=LOCK_HELD_EXIT_CODE,
            )
        if run.status == JobRun.Status.SKIPPED and self.skipped_is_error:
            raise CommandError(line, returncode=1)
        self.stdout.write(line)
