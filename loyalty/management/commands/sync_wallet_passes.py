"""manage.py sync_wallet_passes: the runbook's manual re-sync, of the last hour, a window or one card."""

from typing import Any

from django.core.management.base import CommandError

from jobs.commands import JobCommand
from jobs.exceptions import PermanentJobError
from jobs.models import JobRun
from loyalty.models import LoyaltyCard
from loyalty.tasks import parse_since


class Command(JobCommand):
    help = (
        "Push loyalty cards to Google/Apple wallets now: the cards changed in the last hour "
        "(as the hourly job), one card (--card, e.g. from a run's failed_card_ids), or every "
        "card changed since a time (--all-since 2026-01-31T00:00Z)."
    )
    job_name = "loyalty.sync_wallet_passes"
    dry_run_option = False  # pushing is the work; there is nothing to preview

    def add_arguments(self, parser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--card", type=int, help="re-sync this LoyaltyCard id")
        group.add_argument("--all-since", help="ISO 8601 datetime with zone")

    def job_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        card, all_since = options["card"], options["all_since"]
        if card is not None:
            found = LoyaltyCard.objects.filter(pk=card).first()
            if found is None:
                raise CommandError(f"no loyalty card with id {card}", returncode=2)
            if not found.has_wallet_pass:
                raise CommandError(f"card {card} has no Google or Apple wallet pass", returncode=2)
            return {"card_id": card}
        if all_since is not None:
            try:
                parse_since(all_since)
            except PermanentJobError as exc:
                raise CommandError(f"--all-since: {exc}", returncode=2) from None
            return {"since": all_since}
        return {}

    def report(self, run: JobRun) -> None:
        """Cards that failed make the command fail too (exit 1), with their ids."""
        super().report(run)
        if run.result.get("failed"):
            raise CommandError(
                f"{run.result['failed']} card(s) failed: {run.result['failed_card_ids']}",
                returncode=1,
            )
