"""manage.py cleanup_expired_carts [--days N] [--dry-run] (cleanup_old_audit_logs is this
command for another job)."""

from typing import Any

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = (
        "Delete carts not updated for N days (default COMMERCE_CART_RETENTION_DAYS, 30) with"
        " their lines, empty carts first, as the 02:00 UTC job does."
    )
    job_name = "commerce.cleanup_expired_carts"
    days_help = "carts not updated for this many days"

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--days", help=self.days_help)

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        days = options["days"]
        return {} if days is None else {"older_than_days": days}
