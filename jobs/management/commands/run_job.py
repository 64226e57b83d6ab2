"""manage.py run_job NAME [key=value ...] [--queue]"""

import json
from typing import Any

from django.core.management.base import CommandError

from jobs.commands import JobCommand, command_user
from jobs.models import JobRun
from jobs.registry import get_job
from jobs.runner import enqueue_job


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


class Command(JobCommand):
    help = (
        "Run a registered job now, in this process (default) or through its cluster's queue "
        "(--queue). Every run is recorded in the job history. See `manage.py list_jobs`."
    )
    dry_run_option = False  # a job that has one takes dry_run=true

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="job name, e.g. loyalty.expire_points")
        parser.add_argument("arguments", nargs="*", metavar="key=value")
        parser.add_argument(
            "--queue", action="store_true", help="queue it for the cluster instead of running here"
        )

    def get_job_name(self, options: dict[str, Any]) -> str:
        return options["name"]

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        return parse_assignments(options["arguments"])

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["queue"]:
            return super().handle(*args, **options)
        name, kwargs = options["name"], self.job_kwargs(options)
        self.check_job(name, kwargs)
        run = enqueue_job(
            name, kwargs=kwargs, trigger=JobRun.Trigger.COMMAND, triggered_by=command_user()
        )
        self.stdout.write(f"queued {name} as run #{run.pk} on cluster {get_job(name).cluster}")
