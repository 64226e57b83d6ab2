"""manage.py cleanup_expired_tokens [--dry-run]."""

from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = (
        "Delete expired password-reset, verification and one-time-code tokens, and those used"
        " more than a day ago, as the 03:00 UTC job does; counted per kind."
    )
    job_name = "commerce.cleanup_expired_tokens"
