"""manage.py import_bibliotheca_purchases: queue purchase-record imports by hand."""

from argparse import ArgumentTypeError
from contextlib import suppress
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from bibliotheca.models import Collection
from bibliotheca.services.purchase_chain import CHAIN_JOB
from jobs.cli.commands import command_user, refused_exit_2
from jobs.cli.types import object_id
from jobs.models import JobRun
from jobs.runner import enqueue_job


class Command(BaseCommand):
    help = (
        "Queue the purchase-record import for one collection (--collection NAME_OR_ID) or "
        "for all enabled ones (--import-all). Use it after adding a collection or to catch "
        "up before the daily 04:00 UTC run; --force-reimport restarts at 2014-01-01."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--import-all", action="store_true")
        parser.add_argument("--collection", metavar="NAME_OR_ID")
        parser.add_argument("--force-reimport", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        import_all, name, force = opts["import_all"], opts["collection"], opts["force_reimport"]
        if import_all and name:
            raise CommandError("give either --import-all or --collection, not both", returncode=2)
        if not import_all and not name:
            raise CommandError("give --import-all or --collection NAME_OR_ID", returncode=2)
        if import_all:
            job = "bibliotheca.import_purchase_records_for_all_collections"
            kwargs = {"force_reimport": force}
            what = "import of all enabled collections"
        else:
            collection = find_collection(name)
            job, kwargs = CHAIN_JOB, {"collection_id": collection.pk, "force_reimport": force}
            since = "2014-01-01 (forced)" if force else "its checkpoint"
            what = f"import of {collection.name!r} from {since}"
        with refused_exit_2():  # the job's own check (e.g. a disabled collection)
            run = enqueue_job(
                job, kwargs=kwargs, trigger=JobRun.Trigger.COMMAND, triggered_by=command_user()
            )
        self.stdout.write(f"queued run #{run.pk}: {what}")


def find_collection(name_or_id: str) -> Collection:
    """By exact name first, then by id (ASCII digits only: "٣" is not 3, "²" not an id);
    CommandError naming the value otherwise. Whether it may be imported is the job's check."""
    collection = Collection.objects.filter(name=name_or_id).first()
    if collection is None:
        with suppress(ArgumentTypeError):
            collection = Collection.objects.filter(pk=object_id(name_or_id)).first()
    if collection is None:
        raise CommandError(f"unknown Bibliotheca collection {name_or_id!r}", returncode=2)
    return collection
