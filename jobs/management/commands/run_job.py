"""manage.py run_job NAME [key=value ...] [--queue]"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.arguments import check_job_arguments
from jobs.commands import lock_held_error
from jobs.context import watching_progress
from jobs.exceptions import BadJobArguments, UnknownJob
from jobs.models import JobRun
from jobs.progress import ProgressPrinter
from jobs.registry import get_job
from jobs.runner import enqueue_job, run_job_now


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """key=value pairs; values are JSON when they parse (1, true, "x", [1]) else strings."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise CommandError(f"bad argument {pair!r}: expected key=value", returncode=2)
        if key in kwargs:
            raise CommandError(f"argument {key!r} given twice", returncode=2)
        try:
            kwargs[key] = json.loads(raw)
        except json.JSONDecodeError:
            kwargs[key] = raw
        except ValueError:  # Python refuses int strings past 4,300 digits
            raise CommandError(
                f"argument {key}: a number of {len(raw)} digits is out of range", returncode=2
            ) from None
    return kwargs


class Command(BaseCommand):
    help = (
        "Run a registered job now, in this process (default) or through its cluster's queue "
        "(--queue). Every run is recorded in the job history. See `manage.py list_jobs`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="job name, e.g. loyalty.expire_points")
        parser.add_argument("arguments", nargs="*", metavar="key=value")
        parser.add_argument(
            "--queue", action="store_true", help="queue it for the cluster instead of running here"
        )

    def handle(self, *args: Any, name: str, arguments: list[str], queue: bool, **options: Any):
        try:
            spec = get_job(name)
            kwargs = parse_assignments(arguments)
            check_job_arguments(name, kwargs)
        except (UnknownJob, BadJobArguments) as exc:
            raise CommandError(str(exc), returncode=2) from None
        if queue:
            run = enqueue_job(
                name, kwargs=kwargs, trigger=JobRun.Trigger.COMMAND, triggered_by="cli"
            )
            self.stdout.write(f"queued {name} as run #{run.pk} on cluster {spec.cluster}")
            return
        printer = ProgressPrinter(label=name, stream=self.stdout._out)
        try:
            with watching_progress(lambda run, progress: printer.update(progress)):
                run = run_job_now(
                    name, kwargs=kwargs, trigger=JobRun.Trigger.COMMAND, triggered_by="cli"
                )
        finally:
            printer.finish()
        self.stdout.write(
            f"{name} run #{run.pk} {run.status} in {run.duration_seconds or 0:.2f}s: "
            f"{json.dumps(run.result, default=str)}"
        )
        if run.status == JobRun.Status.FAILED:
            raise CommandError(f"{name} failed: {run.error}", returncode=1)
        if (held := lock_held_error(run)) is not None:
            raise held  # exit 3: another live run holds the lock; says which and until when
