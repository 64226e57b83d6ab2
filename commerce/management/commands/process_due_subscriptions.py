"""manage.py process_due_subscriptions [--date YYYY-MM-DD] [--subscription ID ...] [--dry-run]."""

from typing import Any

from jobs.cli.commands import JobCommand


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
            dest="subscriptions",
            help="only this subscription id (repeatable)",
        )

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        kwargs = {"date": options["date"], "subscription_ids": options["subscriptions"]}
        return {key: value for key, value in kwargs.items() if value is not None}
