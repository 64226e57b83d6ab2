"""manage.py cleanup_sessions [--dry-run]."""

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = "Delete expired sessions in batches (daily at 03:00 UTC)."
    job_name = "exchanges.cleanup_sessions"
