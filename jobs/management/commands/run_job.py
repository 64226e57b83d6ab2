from typing import Any

from django.core.management.base import CommandError

from jobs.cli.commands import JobCommand, command_user, refused_exit_2
from jobs.models import JobRun
from jobs.registry import get_job
from jobs.runner import enqueue_job


class Command(JobCommand):
    help = (
        "Run a registered job now, in this process (default) or through its cluster's queue "
        "(--queue). Every run is recorded in the job history. See `manage.py list_jobs`."
        " Values are read by the job's types: 5, 2.5, true, null, [1, 2], text as is."
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
        """key=value pairs, values as typed (the job's annotations read them: jobs.arguments)."""
        texts: dict[str, Any] = {}
        for pair in options["arguments"]:
            key, sep, raw = pair.partition("=")
            if not sep or not key.isidentifier():
                raise CommandError(f"bad argument {pair!r}: expected key=value", returncode=2)
            if key in texts:
                raise CommandError(f"argument {key!r} given twice", returncode=2)
            texts[key] = raw
        return texts

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["queue"]:
            return super().handle(*args, **options)
        name = options["name"]
        with refused_exit_2():
            kwargs = self.typed_kwargs(name, options)
            run = enqueue_job(
                name, kwargs=kwargs, trigger=JobRun.Trigger.COMMAND, triggered_by=command_user()
            )
        cluster = get_job(name).cluster
        self.stdout.write(f"queued {name} as run #{run.pk} on cluster {cluster}")
