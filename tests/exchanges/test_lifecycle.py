"""Auto-complete, purge (cascade, one warning) and cleanups delete exactly what they should."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.sessions.models import Session

from exchanges.models import (
    Exchange,
    Exclusion,
    MagicToken,
    Match,
    Participant,
    RateLimit,
    Reminder,
)
from exchanges.services.cleanup import cleanup_rate_limits, cleanup_sessions, cleanup_tokens
from exchanges.services.completion import complete_exchanges
from exchanges.services.matching import match_exchange
from exchanges.services.purge import purge_completed_exchanges, purge_day, start_of_day
from exchanges.services.reminders import send_due_reminders
from jobs.models import Notification

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 1, 31, 2, 0, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_complete_exchanges__only_matched_exchanges_whose_date_passed(make_exchange):
    past = make_exchange(state="matched", exchange_at=NOW - timedelta(hours=1))
    future = make_exchange(state="matched", exchange_at=NOW + timedelta(hours=1))
    draft = make_exchange(state="draft", exchange_at=NOW - timedelta(days=1))
    Reminder.objects.create(exchange=past, days_before=1, due_at=NOW + timedelta(days=1))

    result = complete_exchanges()

    assert result == {"completed": 1, "exchange_ids": [past.pk], "reminders_skipped": 1}
    states = dict(Exchange.objects.values_list("pk", "state"))
    assert states == {past.pk: "completed", future.pk: "matched", draft.pk: "draft"}
    assert Exchange.objects.get(pk=past.pk).completed_at == NOW


def completed(make_exchange, make_participants, *, days_ago: float, warned_days_ago=None, **fields):
    exchange = make_exchange(
        state="completed", completed_at=NOW - timedelta(days=days_ago), **fields
    )
    if warned_days_ago is not None:  # as the purge's warning then recorded it
        warned_at = NOW - timedelta(days=warned_days_ago)
        day = purge_day(exchange, now=warned_at, retention_days=30, warning_days=7)
        exchange.purge_warning_sent_at, exchange.purge_after = (
            warned_at,
            start_of_day(day, exchange),
        )
        exchange.save()
    a, b, c = make_participants(exchange, 3)
    Match.objects.create(exchange=exchange, giver=a, receiver=b)
    Exclusion.objects.create(exchange=exchange, participant_a=a, participant_b=c)
    Reminder.objects.create(exchange=exchange, days_before=1, due_at=NOW, status="sent")
    return exchange


def test_purge__cascades_warns_once_and_keeps_the_rest(make_exchange, make_participants):
    expired = completed(make_exchange, make_participants, days_ago=31, warned_days_ago=8)
    unwarned = completed(make_exchange, make_participants, days_ago=40)
    warn_now = completed(make_exchange, make_participants, days_ago=23.5)
    recent = completed(make_exchange, make_participants, days_ago=10)

    with time_machine.travel(NOW, tick=False):
        result = purge_completed_exchanges()
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        again = purge_completed_exchanges()

    assert result["purged_exchanges"] == [
        {
            "id": expired.pk,
            "name": "Office party",
            "rows": {
                "participants": 3,
                "matches": 1,
                "exclusions": 1,
                "reminders": 1,
                "notifications": 0,
            },
        }
    ]
    assert (result["warned"], sorted(result["warned_ids"])) == (2, [unwarned.pk, warn_now.pk])
    assert (again["warned"], again["purged"]) == (0, 0)
    assert set(Exchange.objects.values_list("pk", flat=True)) == {
        unwarned.pk,
        warn_now.pk,
        recent.pk,
    }
    for model in (Participant, Match, Exclusion, Reminder):
        assert not model.objects.filter(exchange_id=expired.pk).exists()
    assert Participant.objects.count() == 9
    warnings = Notification.objects.filter(template="exchanges/notifications/purge_warning")
    assert warnings.count() == 2
    # Both were promised Sunday 7 February (New York), a full 7 days after the warning;
    # the unwarned one was never purged unwarned.
    assert {w.body.split("permanently on ")[1][:24] for w in warnings} == {
        "Sunday 07 February 2027."
    }
    with time_machine.travel(NOW + timedelta(days=7), tick=False):  # Saturday 21:00 there
        assert purge_completed_exchanges()["purged"] == 0
    # Sunday 21:00 in New York, and the run starts a few ms early in its minute: kept.
    with time_machine.travel(NOW + timedelta(days=8) - timedelta(milliseconds=5), tick=False):
        later = purge_completed_exchanges()
    assert [p["id"] for p in later["purged_exchanges"]] == [unwarned.pk, warn_now.pk]


@time_machine.travel(NOW, tick=False)
def test_purge_now__deletes_exactly_the_chosen_completed_exchanges(
    make_exchange, make_participants
):
    chosen = completed(make_exchange, make_participants, days_ago=1)
    matched = make_exchange(state="matched")

    result = purge_completed_exchanges(exchange_ids=[chosen.pk, matched.pk])

    assert [p["id"] for p in result["purged_exchanges"]] == [chosen.pk]
    assert list(Exchange.objects.values_list("pk", flat=True)) == [matched.pk]


@time_machine.travel(NOW, tick=False)
def test_cleanup_tokens__expired_and_used_over_a_day_ago():
    def token(name, **fields):
        return MagicToken.objects.create(
            email="a@example.com", token_hash=name, expires_at=NOW + timedelta(hours=1), **fields
        )

    token("expired", created_at=NOW).__class__.objects.filter(token_hash="expired").update(
        expires_at=NOW - timedelta(seconds=1)
    )
    token("used-old", used_at=NOW - timedelta(hours=25))
    token("used-recent", used_at=NOW - timedelta(hours=23))
    token("fresh")

    assert cleanup_tokens(dry_run=True) == {"dry_run": True, "would_delete": 2}
    assert cleanup_tokens(batch_size=1) == {"deleted": 2}
    assert sorted(MagicToken.objects.values_list("token_hash", flat=True)) == [
        "fresh",
        "used-recent",
    ]


@time_machine.travel(NOW, tick=False)
def test_cleanup_sessions_and_rate_limits__only_expired_rows_in_batches():
    Session.objects.bulk_create(
        Session(session_key=f"s{i}", session_data="", expire_date=NOW + timedelta(minutes=i - 5))
        for i in range(10)
    )
    RateLimit.objects.bulk_create(
        RateLimit(key=f"k{i}", count=i, expires_at=NOW + timedelta(minutes=i - 3)) for i in range(6)
    )

    assert cleanup_sessions(batch_size=2) == {"deleted": 5}
    assert cleanup_rate_limits(batch_size=2) == {"deleted": 4}
    assert Session.objects.count() == 5 and not Session.objects.filter(expire_date__lt=NOW).exists()
    assert sorted(RateLimit.objects.values_list("key", flat=True)) == ["k4", "k5"]


def test_purge__the_exchange_s_emails_go_with_it(make_exchange, make_participants):
    """The outbox holds each participant's address and whom they drew: a purge that left
    them there (for ever, when dead) would not delete what the warning said it deletes."""
    party = NOW - timedelta(days=40)
    kept, purged = (
        make_exchange(state="registration_open", exchange_at=party, name=name)
        for name in ("Kept", "Purged")
    )
    for exchange in (kept, purged):
        make_participants(exchange, 3)
        with time_machine.travel(party - timedelta(days=20), tick=False):
            match_exchange(exchange_id=exchange.pk)
        with time_machine.travel(party - timedelta(days=7), tick=False):
            send_due_reminders()
    Exchange.objects.filter(pk=kept.pk).update(exchange_at=NOW)  # not due for the purge
    with time_machine.travel(party + timedelta(hours=1), tick=False):
        complete_exchanges()
    with time_machine.travel(NOW - timedelta(days=9), tick=False):
        assert purge_completed_exchanges()["warned_ids"] == [purged.pk]
    assert Notification.objects.filter(body__contains='"Purged"').count() == 7

    with time_machine.travel(NOW, tick=False):
        (log,) = purge_completed_exchanges()["purged_exchanges"]
    assert (log["id"], log["rows"]["notifications"]) == (purged.pk, 7)

    assert not Notification.objects.filter(body__contains='"Purged"').exists()
    assert not Notification.objects.filter(recipient__contains=f".x{purged.pk}@").exists()
    assert Notification.objects.filter(body__contains='"Kept"').count() == 6
