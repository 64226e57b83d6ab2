"""manage.py process_due_subscriptions [--date YYYY-MM-DD] [--subscription ID ...] [--dry-run]."""

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import CommandError

from commerce.management.commands._options import checked_date
from commerce.models import Subscription
from jobs.cli_types import object_id
from jobs.commands import JobCommand


class Command(JobCommand):
    help = (
        "Turn due subscriptions into orders now, as the 00:00 UTC job does (after a missed"
        " night, or for one subscription). --date processes as of that day; --dry-run counts."
    )
    job_name = "commerce.process_due_subscriptions"
    skipped_is_error = True  # the daily run holds the lock: nothing was done

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--date",
            help="process deliveries due on or before this day (the store's, COMMERCE_TIME_ZONE)",
        )
        parser.add_argument(
            "--subscription",
            action="append",
            type=str,
            dest="subscriptions",
            help="only this subscription id (repeatable)",
        )

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if options["date"] is not None:
            kwargs["date"] = checked_date(options["date"])
        if options["subscriptions"]:
            ids = []
            for value in options["subscriptions"]:
                try:
                    ids.append(object_id(value))
                except ArgumentTypeError:
                    raise CommandError(
                        f"--subscription {value!r} is not an id", returncode=2
                    ) from None
            found = set(Subscription.objects.filter(pk__in=ids).values_list("pk", flat=True))
            missing = sorted(set(ids) - found)
            if missing:
                raise CommandError(f"no subscription with id {missing[0]}", returncode=2)
            kwargs["subscription_ids"] = ids
        return kwargs
