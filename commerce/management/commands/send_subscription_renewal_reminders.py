"""manage.py send_subscription_renewal_reminders [--date YYYY-MM-DD] [--dry-run]."""

from typing import Any

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = (
        "Email the reminder of every subscription due tomorrow (or the day after --date), as"
        " the daily 00:00 UTC job does (tomorrow in COMMERCE_TIME_ZONE); each subscription once"
        " per delivery date."
    )
    job_name = "commerce.send_subscription_renewal_reminders"

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--date", help="remind deliveries due the day after this day")

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        day = options["date"]
        return {} if day is None else {"date": day}
