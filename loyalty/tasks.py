"""Job entry points of the loyalty app (thin: each calls one service) and their argument checks."""

from datetime import datetime
from typing import Annotated, Any

from jobs.arguments import IsoDate
from jobs.exceptions import BadJobArguments
from jobs.registry import job
from loyalty.models import LoyaltyCard, LoyaltyProgram
from loyalty.services.expiration import expire_points
from loyalty.services.wallet_sync import push_wallet_changes, sync_wallet_passes


def check_expire_arguments(kwargs: dict[str, Any]) -> None:
    """As `manage.py expire_points --program`: the program exists and expires points."""
    program_id = kwargs.get("program_id")
    if program_id is None:
        return
    program = LoyaltyProgram.objects.filter(pk=program_id).first()
    if program is None:
        raise BadJobArguments(f"no loyalty program with id {program_id}")
    if not program.is_active or not program.points_expiration_days:
        raise BadJobArguments(
            f"program {program_id} does not expire points (inactive or no expiration days)"
        )


def check_sync_arguments(kwargs: dict[str, Any]) -> None:
    """The one card asked for (the runbook's re-sync of a card) exists and has a pass."""
    card_id = kwargs.get("card_id")
    if card_id is None:
        return
    card = LoyaltyCard.objects.filter(pk=card_id).first()
    if card is None:
        raise BadJobArguments(f"no loyalty card with id {card_id}")
    if not (card.google_object_id or card.apple_serial_number):
        raise BadJobArguments(f"card {card_id} has no Google or Apple wallet pass")


@job(
    "loyalty.expire_points",
    cron="0 2 * * *",
    retry=True,
    timeout_seconds=1800,
    permissions=("loyalty.change_loyaltycard",),  # as the admin's "Expire now"
    validate=check_expire_arguments,
    run_late_once=True,  # a night missed while the cluster was down still runs, late
)
def expire_points_task(
    *, program_id: int | None = None, card_ids: list[int] | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Warn cards nearing (or past) expiration, then expire the points of warned cards."""
    return expire_points(program_id=program_id, card_ids=card_ids, dry_run=dry_run)


@job(
    "loyalty.sync_wallet_passes",
    cron="0 * * * *",
    retry=False,  # the next hourly run is the retry: cards stay behind until a wallet confirms
    timeout_seconds=900,
    validate=check_sync_arguments,
)
def sync_wallet_passes_task(
    *,
    card_id: int | None = None,
    card_ids: list[int] | None = None,
    since: Annotated[str, IsoDate(with_time=True)] | None = None,
) -> dict[str, Any]:
    """Push every card whose wallets are behind (or the given cards, or those changed since
    `since`) to Google and Apple wallets."""
    if card_id is not None:
        card_ids = [*(card_ids or []), card_id]
    moment = None if since is None else datetime.fromisoformat(since)
    return sync_wallet_passes(card_ids=card_ids, since=moment)


@job(
    "loyalty.push_wallet_changes",
    cron="* * * * *",
    retry=False,  # the next minute (and the hourly run) is the retry
    timeout_seconds=600,
)
def push_wallet_changes_task() -> dict[str, Any]:
    """Push the wallets of the cards whose passes changed since the last minute (idle: one
    query, no remote call); the hourly loyalty.sync_wallet_passes stays the safety net."""
    return push_wallet_changes()
