"""manage.py cleanup_rate_limits [--dry-run]."""

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = "Delete expired rate-limit counters (daily at 04:00 UTC)."
    job_name = "exchanges.cleanup_rate_limits"
