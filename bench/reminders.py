"""Reminder sweep cost per participant: our set-based sweep vs the source's per-participant loop.

    .venv/bin/python bench/reminders.py   # DATABASE_URL, default .run/database_url

Runs on its own database, `<name>_exchanges_bench` on the same server (created and migrated
when missing), never on `<name>` itself.

Builds 100 matched exchanges x 100 participants with one due reminder each, then, in the
same run and on the same data:

- sweep  exchanges.services.reminders.send_due_reminders: batches of reminders claimed
         SKIP LOCKED, one participants query per batch, outbox inserts of 500 rows;
- seed   the gift-exchange source's shape (docs/sources.md): per exchange, one query per
         participant and one send (an outbox insert) per participant.

Both render the same templates. Everything runs in one transaction that is rolled back,
so the database is left as it was (and no delivery is kicked). Machine noise moves the
absolute figures; the ratio, measured side by side, is the figure to compare.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import own_database, setup_django  # noqa: E402


class Rollback(Exception):
    """Raised to roll the benchmark's data back."""


def build(exchanges: int, participants: int):
    from django.utils import timezone

    from exchanges.models import Exchange, Match, Participant, Reminder

    now = timezone.now()
    rows = Exchange.objects.bulk_create(
        Exchange(
            name=f"bench {i}",
            organizer_email="bench@example.com",
            timezone=("America/New_York", "Europe/Berlin", "Asia/Tokyo")[i % 3],
            exchange_at=now + timedelta(days=7),
            state=Exchange.State.MATCHED,
        )
        for i in range(exchanges)
    )
    people = Participant.objects.bulk_create(
        Participant(exchange=e, name=f"P{j}", email=f"p{j}.e{e.pk}@example.com")
        for e in rows
        for j in range(participants)
    )
    Match.objects.bulk_create(
        Match(
            exchange_id=people[i].exchange_id,
            giver=people[i],
            receiver=people[i - 1 if i % participants else i + participants - 1],
        )
        for i in range(len(people))
    )
    Reminder.objects.bulk_create(
        Reminder(exchange=e, days_before=7, due_at=now - timedelta(seconds=5)) for e in rows
    )
    return rows


def seed_style(exchanges) -> int:
    """One query and one send per participant, as the source's send_reminder_for_exchange."""
    from bench.common import send_one
    from exchanges.models import Participant
    from jobs.outbox.notifications import OutgoingNotification

    sent = 0
    for exchange in exchanges:
        ids = Participant.objects.filter(
            exchange=exchange, reminder_enabled=True, withdrawn_at=None
        ).values_list("pk", flat=True)
        for pk in ids:
            person = Participant.objects.select_related("match__receiver").get(pk=pk)
            local = exchange.local_exchange_at
            sent += send_one(
                OutgoingNotification(
                    channel="email",
                    recipient=person.email,
                    template="exchanges/notifications/reminder",
                    dedup_key=f"bench-seed:{exchange.pk}:{pk}",
                    context={
                        "exchange_name": exchange.name,
                        "participant_name": person.name,
                        "receiver_name": person.match.receiver.name,
                        "days_before": 7,
                        "local_date": local.strftime("%A %d %B %Y, %H:%M %Z"),
                    },
                )
            )
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=100)
    parser.add_argument("--participants", type=int, default=100)
    args = parser.parse_args()

    setup_django(own_database("exchanges_bench"))
    from django.db import connection, transaction

    from exchanges.services.reminders import send_due_reminders

    total = args.exchanges * args.participants
    counts = {"sweep": 0, "seed": 0}
    phase = ["build"]

    def count(execute, sql, params, many, context):
        counts[phase[0]] = counts.get(phase[0], 0) + 1
        return execute(sql, params, many, context)

    try:
        with transaction.atomic(), connection.execute_wrapper(count):
            exchanges = build(args.exchanges, args.participants)
            phase[0] = "sweep"
            started = time.perf_counter()
            result = send_due_reminders()
            sweep_seconds = time.perf_counter() - started
            phase[0] = "seed"
            started = time.perf_counter()
            seed_sent = seed_style(exchanges)
            seed_seconds = time.perf_counter() - started
            raise Rollback
    except Rollback:
        pass
    assert result["notifications"] == total == seed_sent, (result, seed_sent)
    print(f"{args.exchanges} exchanges x {args.participants} participants = {total} reminders")
    for label, seconds, queries in (
        ("sweep", sweep_seconds, counts["sweep"]),
        ("seed", seed_seconds, counts["seed"]),
    ):
        print(
            f"{label:6} {seconds:7.2f} s  {seconds / total * 1e6:8.1f} us/participant"
            f"  {queries:6} queries"
        )
    print(f"ratio seed/sweep per participant: {seed_seconds / sweep_seconds:.1f}x")


if __name__ == "__main__":
    main()
