"""Draw names: a random derangement of the active participants that honours exclusions.

A few uniformly random permutations first (cheap, unbiased); if none fits, a perfect
bipartite matching (Kuhn's augmenting paths) finds a draw or proves none exists, so an
impossible draw fails clearly instead of looping.
"""

import random
from typing import Any

from django.db import transaction
from django.utils import timezone

from exchanges.exceptions import ExchangeNotFound, InvalidExchangeState, MatchingImpossible
from exchanges.models import Exchange, Exclusion, Match, Participant
from exchanges.services.reminder_planning import plan_reminders
from jobs.outbox.notifications import OutgoingNotification, queue_notifications

MATCHABLE_STATES = (Exchange.State.DRAFT, Exchange.State.REGISTRATION_OPEN)
RANDOM_TRIES = 50


def draw_derangement(
    ids: list[int], forbidden: set[frozenset[int]], *, rng: random.Random
) -> dict[int, int]:
    """giver -> receiver over `ids`: nobody draws themself or a forbidden partner."""
    if len(ids) < 2:
        raise MatchingImpossible(f"a draw needs at least 2 active participants, found {len(ids)}")

    def allowed(giver: int, receiver: int) -> bool:
        return giver != receiver and frozenset((giver, receiver)) not in forbidden

    for _ in range(RANDOM_TRIES):
        receivers = ids[:]
        rng.shuffle(receivers)
        if all(allowed(g, r) for g, r in zip(ids, receivers, strict=True)):
            return dict(zip(ids, receivers, strict=True))
    options = {g: [r for r in ids if allowed(g, r)] for g in ids}
    for choices in options.values():
        rng.shuffle(choices)
    owner: dict[int, int] = {}  # receiver -> giver

    def augment(giver: int, seen: set[int]) -> bool:
        for receiver in options[giver]:
            if receiver in seen:
                continue
            seen.add(receiver)
            if receiver not in owner or augment(owner[receiver], seen):
                owner[receiver] = giver
                return True
        return False

    givers = ids[:]
    rng.shuffle(givers)
    for giver in givers:
        if not augment(giver, set()):
            raise MatchingImpossible(
                f"no draw satisfies the exclusions: participant {giver} has no possible receiver"
                " left"
            )
    return {giver: receiver for receiver, giver in owner.items()}


def check_matchable(
    exchange: Exchange | None, exchange_id: int, *, rematch: bool = False
) -> Exchange:
    """The exchange, if it exists and may be drawn (or, `rematch`, drawn again); else the
    one-line error to show.

    The command and the admin call it before queueing (bad input records nothing); the
    job calls it again under the row lock, since the state may have changed meanwhile.
    """
    if exchange is None:
        raise ExchangeNotFound(f"exchange {exchange_id} does not exist")
    if rematch:
        if exchange.state != Exchange.State.MATCHED:
            raise InvalidExchangeState(
                f"exchange {exchange_id} is {exchange.state}; only matched exchanges can be"
                " re-matched"
            )
        return exchange
    if exchange.state not in MATCHABLE_STATES:
        raise InvalidExchangeState(
            f"exchange {exchange_id} is {exchange.state}; only draft or registration_open"
            " exchanges can be matched"
        )
    return exchange


def match_exchange(
    *,
    exchange_id: int,
    rematch: bool = False,
    dry_run: bool = False,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Draw names, move the exchange to matched, notify each giver, plan reminders.

    `rematch` clears the draw of a matched exchange first (after withdrawals or late
    joiners); a giver whose receiver is unchanged is not told again, every other giver is,
    even of a receiver an earlier draw gave them (the dedup key names the draw's moment).
    One transaction: either the whole draw with its notifications and reminders commits,
    or nothing changes (an impossible re-draw keeps the old one).
    """
    rng = rng or random.SystemRandom()
    now = timezone.now()
    with transaction.atomic():
        exchange = check_matchable(
            Exchange.objects.select_for_update().filter(pk=exchange_id).first(),
            exchange_id,
            rematch=rematch,
        )
        before = dict(
            Match.objects.filter(exchange=exchange).values_list("giver_id", "receiver_id")
        )
        cleared = Match.objects.filter(exchange=exchange).delete()[0] if rematch else 0
        people = {
            p.pk: p
            for p in Participant.objects.filter(exchange=exchange, withdrawn_at__isnull=True)
        }
        forbidden = {
            frozenset(pair)
            for pair in Exclusion.objects.filter(exchange=exchange).values_list(
                "participant_a_id", "participant_b_id"
            )
        }
        pairs = draw_derangement(sorted(people), forbidden, rng=rng)
        result: dict[str, Any] = {
            "exchange_id": exchange_id,
            "participants": len(people),
            "exclusions": len(forbidden),
            "dry_run": dry_run,
        }
        if rematch:
            result["cleared"] = cleared
        if dry_run:
            transaction.set_rollback(True)
            return result
        Match.objects.bulk_create(
            Match(exchange=exchange, giver_id=g, receiver_id=r) for g, r in pairs.items()
        )
        exchange.state = Exchange.State.MATCHED
        exchange.save(update_fields=["state"])
        local = exchange.local_exchange_at
        result["notified"] = queue_notifications(
            OutgoingNotification(
                channel="email",
                recipient=people[g].email,
                template="exchanges/notifications/match_made",
                dedup_key=f"exchanges:match:{exchange_id}:{g}:{r}:{now:%Y%m%dT%H%M%S.%fZ}",
                context={
                    "exchange_name": exchange.name,
                    "giver_name": people[g].name,
                    "receiver_name": people[r].name,
                    "local_date": local.strftime("%A %d %B %Y, %H:%M %Z"),
                },
            )
            for g, r in pairs.items()
            if before.get(g) != r
        )
        result["reminders"] = plan_reminders(exchange_id=exchange_id, now=now)
    return result
