"""manage.py cleanup_tokens [--dry-run]."""

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = "Delete expired login tokens and tokens used more than 24 h ago (hourly)."
    job_name = "exchanges.cleanup_tokens"
