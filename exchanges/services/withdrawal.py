"""A participant withdraws: their giver takes over their receiver, or the organizer is told
to re-match (docs/exchanges.md, "Withdrawals and late joiners").
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exchanges.models import Exchange, Exclusion, Match, Participant
from jobs.outbox.notifications import OutgoingNotification, queue_notification


def withdraw_participant(*, participant_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Mark the participant withdrawn and repair the draw of a matched exchange (one
    transaction, idempotent: withdrawing twice changes nothing)."""
    now = now or timezone.now()
    with transaction.atomic():
        participant = Participant.objects.select_for_update().get(pk=participant_id)
        exchange = Exchange.objects.select_for_update().get(pk=participant.exchange_id)
        result: dict[str, Any] = {"participant_id": participant_id, "exchange_id": exchange.pk}
        if participant.withdrawn_at is not None:
            return {**result, "outcome": "already withdrawn"}
        participant.withdrawn_at = now
        participant.save(update_fields=["withdrawn_at"])
        if exchange.state != Exchange.State.MATCHED:
            return {**result, "outcome": "withdrawn"}
        gives = Match.objects.filter(giver=participant).select_related("receiver").first()
        drawn_by = Match.objects.filter(receiver=participant).select_related("giver").first()
        if gives is None and drawn_by is None:  # joined after the draw: nothing to repair
            return {**result, "outcome": "withdrawn"}
        Match.objects.filter(Q(giver=participant) | Q(receiver=participant)).delete()
        problem = _why_not_repairable(exchange, gives, drawn_by)
        if problem is None:
            giver, receiver = drawn_by.giver, gives.receiver
            Match.objects.create(exchange=exchange, giver=giver, receiver=receiver)
            queue_notification(
                OutgoingNotification(
                    channel="email",
                    recipient=giver.email,
                    template="exchanges/notifications/match_changed",
                    # The moment too: a re-match between two withdrawals may have given
                    # this giver someone else, and the same hand-over is news again.
                    dedup_key=f"exchanges:match_changed:{exchange.pk}:{giver.pk}:{receiver.pk}:"
                    f"{now:%Y%m%dT%H%M%S.%fZ}",
                    context={
                        "exchange_name": exchange.name,
                        "giver_name": giver.name,
                        "receiver_name": receiver.name,
                        "local_date": exchange.local_exchange_at.strftime("%A %d %B %Y, %H:%M %Z"),
                    },
                )
            )
            return {
                **result,
                "outcome": "repaired",
                "giver_id": giver.pk,
                "receiver_id": receiver.pk,
            }
        queue_notification(
            OutgoingNotification(
                channel="email",
                recipient=exchange.organizer_email,
                template="exchanges/notifications/rematch_needed",
                dedup_key=f"exchanges:rematch_needed:{exchange.pk}:{participant.pk}",
                context={
                    "exchange_name": exchange.name,
                    "participant_name": participant.name,
                    "reason": problem,
                    "without_receiver": drawn_by.giver.name if drawn_by else "",
                    "without_giver": gives.receiver.name if gives else "",
                },
            )
        )
        return {**result, "outcome": "rematch needed", "reason": problem}


def _why_not_repairable(
    exchange: Exchange, gives: Match | None, drawn_by: Match | None
) -> str | None:
    if gives is None or drawn_by is None:
        return "the draw was already incomplete"
    giver, receiver = drawn_by.giver_id, gives.receiver_id
    if giver == receiver:
        return "the two drew each other"
    if Exclusion.objects.filter(
        Q(participant_a_id=giver, participant_b_id=receiver)
        | Q(participant_a_id=receiver, participant_b_id=giver),
        exchange=exchange,
    ).exists():
        return "the remaining pair is excluded"
    return None
