"""manage.py cleanup_old_audit_logs [--days N] [--dry-run]."""

from typing import Any

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = (
        "Delete audit-log rows older than N days (default COMMERCE_AUDIT_RETENTION_DAYS, 90)."
        " Not scheduled unless JOBS_SCHEDULES names it (docs/commerce.md)."
    )
    job_name = "commerce.cleanup_old_audit_logs"

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--days", help="rows older than this many days")

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        days = options["days"]
        return {} if days is None else {"older_than_days": days}
