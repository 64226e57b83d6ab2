"""manage.py sync_wallet_passes: the runbook's manual re-sync: cards behind, one card or a window."""

from typing import Any

from django.core.management.base import CommandError

from jobs.cli.commands import JobCommand
from jobs.models import JobRun


class Command(JobCommand):
    help = (
        "Push loyalty cards to Google/Apple wallets now: every card a wallet has not confirmed "
        "yet (as the hourly job), one card (--card, e.g. from a run's failed_card_ids), or "
        "again every card changed since a time (--all-since 2026-01-31T00:00Z). Exit 1 when "
        "cards failed or a wallet was stopped (credentials)."
    )
    job_name = "loyalty.sync_wallet_passes"
    dry_run_option = False  # pushing is the work; there is nothing to preview
    skipped_is_error = True  # a skipped run pushed nothing

    def add_arguments(self, parser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--card", help="re-sync this LoyaltyCard id")
        group.add_argument("--all-since", help="ISO 8601 datetime with zone")

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        kwargs = {"card_id": options["card"], "since": options["all_since"]}  # one at most
        return {key: value for key, value in kwargs.items() if value is not None}

    def report(self, run: JobRun) -> None:
        """A stopped wallet (its credentials refused) or cards that failed make the command
        fail too (exit 1), with the wallet's line or the cards' ids."""
        super().report(run)
        if run.result.get("stopped"):
            raise CommandError(run.result["stopped"][0], returncode=1)
        if run.result.get("failed"):
            raise CommandError(
                f"{run.result['failed']} card(s) failed: {run.result['failed_card_ids']}",
                returncode=1,
            )
