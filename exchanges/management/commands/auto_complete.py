"""manage.py auto_complete [--dry-run]."""

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = "Mark matched exchanges whose date has passed completed (daily at 00:00 UTC)."
    job_name = "exchanges.auto_complete"
