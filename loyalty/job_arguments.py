"""Checks of the loyalty jobs' arguments, run before a run exists (jobs.arguments)."""

from typing import Any

from jobs.exceptions import BadJobArguments
from loyalty.models import LoyaltyCard, LoyaltyProgram


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
    if not card.has_wallet_pass:
        raise BadJobArguments(f"card {card_id} has no Google or Apple wallet pass")
