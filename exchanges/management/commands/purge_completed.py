"""manage.py purge_completed [--exchange ID ...] [--dry-run] [--no-input]."""

import sys
from typing import Any

from django.core.management.base import CommandError

from jobs.arguments import check_job_arguments
from jobs.cli.commands import JobCommand


class Command(JobCommand):
    help = (
        "Warn organizers 7 days ahead and delete exchanges completed 30+ days ago (daily)."
        " With --exchange, delete those completed exchanges now (asks first)."
    )
    job_name = "exchanges.purge_completed"

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--exchange",
            action="append",
            dest="exchanges",
            help="Purge this one now.",
        )
        parser.add_argument(
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Purge without asking (needed without a terminal, e.g. from cron).",
        )

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        ids = options["exchanges"]
        return {"exchange_ids": ids} if ids else {}

    def before_run(self, name: str, kwargs: dict[str, Any], options: dict[str, Any]) -> None:
        """Purging named exchanges now asks first, once the job's check accepts them; with no
        terminal (cron, a pipe, stdin closed) it refuses instead of reading an answer nobody
        typed."""
        ids = kwargs.get("exchange_ids")
        if not ids or not options["interactive"] or options["dry_run"]:
            return
        check_job_arguments(name, kwargs)
        if not sys.stdin or not sys.stdin.isatty():
            raise CommandError(
                "no terminal to confirm the purge on: pass --no-input to purge anyway", returncode=2
            )
        try:
            answer = input(f"Delete exchanges {ids} and all their rows now? Type 'yes': ")
        except (EOFError, KeyboardInterrupt):
            answer = ""
        if answer != "yes":
            raise CommandError("purge cancelled", returncode=2)
