"""manage.py cleanup_old_audit_logs [--days N] [--dry-run]."""

from commerce.management.commands import cleanup_expired_carts


class Command(cleanup_expired_carts.Command):
    help = (
        "Delete audit-log rows older than N days (default COMMERCE_AUDIT_RETENTION_DAYS, 90)."
        " Not scheduled unless JOBS_SCHEDULES names it (docs/commerce.md)."
    )
    job_name = "commerce.cleanup_old_audit_logs"
    days_help = "rows older than this many days"
