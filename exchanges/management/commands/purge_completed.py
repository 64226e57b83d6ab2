"""manage.py purge_completed [--exchange ID ...] [--dry-run] [--no-input]."""

from typing import Any

from django.core.management.base import CommandError

from exchanges.models import Exchange
from jobs.commands import JobCommand


class Command(JobCommand):
    help = (
        "Warn organizers 7 days ahead and delete exchanges completed 30+ days ago (daily)."
        " With --exchange, delete those completed exchanges now (asks first)."
    )
    job_name = "exchanges.purge_completed"

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--exchange", type=int, action="append", dest="exchanges", help="Purge this one now."
        )
        parser.add_argument("--no-input", action="store_false", dest="interactive")

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        ids = options["exchanges"]
        if not ids:
            return {}
        states = dict(Exchange.objects.filter(pk__in=ids).values_list("pk", "state"))
        for pk in ids:
            if pk not in states:
                raise CommandError(f"exchange {pk} does not exist", returncode=2)
            if states[pk] != Exchange.State.COMPLETED:
                raise CommandError(
                    f"exchange {pk} is {states[pk]}; only completed exchanges can be purged",
                    returncode=2,
                )
        if options["interactive"] and not options["dry_run"]:
            answer = input(f"Delete exchanges {ids} and all their rows now? Type 'yes': ")
            if answer != "yes":
                raise CommandError("purge cancelled", returncode=2)
        return {"exchange_ids": ids}
