"""manage.py sync_wallet_passes: the runbook's manual re-sync: cards behind, one card or a window."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.cli_types import object_id
from jobs.commands import lock_held_error
from jobs.exceptions import PermanentJobError
from jobs.models import JobRun
from jobs.runner import run_job_now
from loyalty.models import LoyaltyCard
from loyalty.tasks import parse_since


class Command(BaseCommand):
    help = (
        "Push loyalty cards to Google/Apple wallets now: every card a wallet has not confirmed "
        "yet (as the hourly job), one card (--card, e.g. from a run's failed_card_ids), or "
        "again every card changed since a time (--all-since 2026-01-31T00:00Z). Exit 1 when "
        "cards failed or a wallet was stopped (credentials)."
    )

    def add_arguments(self, parser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--card", type=object_id, help="re-sync this LoyaltyCard id")
        group.add_argument("--all-since", help="ISO 8601 datetime with zone")

    def handle(
        self,
        *args: Any,
        card: int | None,
        all_since: str | None,
        **options: Any,
    ) -> None:
        if card is not None:
            found = LoyaltyCard.objects.filter(pk=card).first()
            if found is None:
                raise CommandError(f"no loyalty card with id {card}", returncode=2)
            if not found.has_wallet_pass:
                raise CommandError(f"card {card} has no Google or Apple wallet pass", returncode=2)
        if all_since is not None:
            try:
                parse_since(all_since)
            except PermanentJobError as exc:
                raise CommandError(f"--all-since: {exc}", returncode=2) from None
        run = run_job_now(
            "loyalty.sync_wallet_passes",
            kwargs={"card_id": card, "since": all_since},
            triggered_by="manage.py sync_wallet_passes",
        )
        self.stdout.write(f"run #{run.pk} {run.status}: {json.dumps(run.result)}")
        if (held := lock_held_error(run)) is not None:
            raise held  # exit 3, naming the run that holds the lock
        if run.status != JobRun.Status.SUCCEEDED:
            raise CommandError(f"run #{run.pk} {run.status}: {run.error or run.result}")
        if run.result.get("stopped"):
            raise CommandError(run.result["stopped"][0], returncode=1)
        if run.result.get("failed"):
            raise CommandError(
                f"{run.result['failed']} card(s) failed: {run.result['failed_card_ids']}",
                returncode=1,
            )
