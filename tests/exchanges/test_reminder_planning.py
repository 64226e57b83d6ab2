"""Reminders land at the exchange's local wall-clock time, across DST; edits replace rows."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError

from exchanges.models import Exchange, Reminder
from exchanges.services.matching import match_exchange
from exchanges.services.reminder_planning import plan_reminders
from exchanges.services.reminders import send_due_reminders
from exchanges.services.rescheduling import update_reminder_settings
from jobs.models import Notification

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
# Thursday 5 Nov 2026, 18:00 EST = 23:00 UTC. DST ended Sunday 1 Nov 2026 (EDT -> EST).
EXCHANGE_AT = datetime(2026, 11, 5, 23, 0, tzinfo=UTC)


def due_times(exchange: Exchange) -> dict[int, datetime]:
    rows = Reminder.objects.filter(exchange=exchange, status=Reminder.Status.SCHEDULED)
    return {r.days_before: r.due_at for r in rows}


@time_machine.travel(datetime(2026, 10, 20, 12, 0, tzinfo=UTC), tick=False)
def test_plan_reminders__new_york_across_november_dst__same_local_wall_clock(make_exchange):
    exchange = make_exchange(exchange_at=EXCHANGE_AT, state=Exchange.State.MATCHED)

    result = plan_reminders(exchange_id=exchange.pk)

    due = due_times(exchange)
    assert result == {"exchange_id": exchange.pk, "replaced": 0, "scheduled": 3, "skipped": 0}
    # 7 days before is still EDT (UTC-4): 18:00 local is 22:00 UTC, not 23:00.
    assert due == {
        7: datetime(2026, 10, 29, 22, 0, tzinfo=UTC),
        3: datetime(2026, 11, 2, 23, 0, tzinfo=UTC),
        1: datetime(2026, 11, 4, 23, 0, tzinfo=UTC),
    }
    assert {d.astimezone(NEW_YORK).strftime("%H:%M") for d in due.values()} == {"18:00"}


@time_machine.travel(datetime(2026, 11, 1, 12, 0, tzinfo=UTC), tick=False)
def test_plan_reminders__past_due_times_are_skipped(make_exchange):
    exchange = make_exchange(exchange_at=EXCHANGE_AT, state=Exchange.State.MATCHED)

    result = plan_reminders(exchange_id=exchange.pk)

    assert (result["scheduled"], result["skipped"]) == (2, 1)
    assert Reminder.objects.get(exchange=exchange, days_before=7).status == "skipped"


@time_machine.travel(datetime(2026, 10, 20, 12, 0, tzinfo=UTC), tick=False)
def test_update_reminder_settings__replaces_rows_for_new_intervals_and_date(make_exchange):
    exchange = make_exchange(exchange_at=EXCHANGE_AT, state=Exchange.State.MATCHED)
    plan_reminders(exchange_id=exchange.pk)

    result = update_reminder_settings(exchange_id=exchange.pk, reminder_days=[10, 2])

    assert result["replaced"] == 3
    assert set(due_times(exchange)) == {10, 2}
    assert Reminder.objects.filter(exchange=exchange).count() == 2

    update_reminder_settings(
        exchange_id=exchange.pk, exchange_at=datetime(2026, 11, 12, 23, 0, tzinfo=UTC)
    )
    assert due_times(exchange) == {
        10: datetime(2026, 11, 2, 23, 0, tzinfo=UTC),
        2: datetime(2026, 11, 10, 23, 0, tzinfo=UTC),
    }


def test_update_reminder_settings__bad_intervals_change_nothing(make_exchange):
    exchange = make_exchange(exchange_at=EXCHANGE_AT, state=Exchange.State.MATCHED)

    with pytest.raises(ValidationError, match="whole days from 1 to 365"):
        update_reminder_settings(exchange_id=exchange.pk, reminder_days=[0, 3])

    exchange.refresh_from_db()
    assert exchange.reminder_days == [7, 3, 1]


def test_exchange_timezone__validated_against_zoneinfo(make_exchange):
    exchange = make_exchange(timezone="Mars/Olympus_Mons")
    with pytest.raises(ValidationError, match="unknown timezone 'Mars/Olympus_Mons'"):
        exchange.full_clean()


def reminders_sent(exchange: Exchange) -> list[tuple[int, str]]:
    """(days before, recipient) of every reminder email queued for the exchange."""
    rows = Notification.objects.filter(
        template="exchanges/notifications/reminder",
        dedup_key__startswith=f"exchanges:reminder:{exchange.pk}:",
    )
    return sorted((int(n.dedup_key.split(":")[3]), n.recipient) for n in rows)


@pytest.fixture
def drawn(make_exchange, make_participants) -> Exchange:
    exchange = make_exchange(exchange_at=EXCHANGE_AT)
    make_participants(exchange, 2)
    with time_machine.travel(datetime(2026, 10, 20, 12, 0, tzinfo=UTC), tick=False):
        match_exchange(exchange_id=exchange.pk)
    return exchange


def sweep_at(moment: datetime) -> None:
    with time_machine.travel(moment, tick=False):
        send_due_reminders()


def test_a_new_timezone_for_the_same_moment__the_7_day_reminder_is_not_sent_twice(drawn):
    sweep_at(datetime(2026, 10, 29, 22, 0, tzinfo=UTC))  # 18:00 EDT, 7 days before
    assert [d for d, _ in reminders_sent(drawn)] == [7, 7]

    with time_machine.travel(datetime(2026, 10, 29, 22, 30, tzinfo=UTC), tick=False):
        # Bogotá has no DST: 7 days before 18:00 there is 23:00 UTC, an hour later.
        Exchange.objects.filter(pk=drawn.pk).update(timezone="America/Bogota")
        plan_reminders(exchange_id=drawn.pk)
    sweep_at(datetime(2026, 10, 29, 23, 0, tzinfo=UTC))

    assert [d for d, _ in reminders_sent(drawn)] == [7, 7]
    assert not Reminder.objects.filter(exchange=drawn, days_before=7, status="scheduled").exists()


def test_a_party_30_minutes_later__the_3_day_reminder_is_not_repeated(drawn):
    sweep_at(datetime(2026, 11, 2, 23, 0, tzinfo=UTC))  # 3 days before
    with time_machine.travel(datetime(2026, 11, 2, 23, 10, tzinfo=UTC), tick=False):
        update_reminder_settings(
            exchange_id=drawn.pk, exchange_at=EXCHANGE_AT + timedelta(minutes=30)
        )
    sweep_at(datetime(2026, 11, 2, 23, 30, tzinfo=UTC))
    sweep_at(datetime(2026, 11, 4, 23, 30, tzinfo=UTC))  # the 1-day one, at the new time

    assert [d for d, _ in reminders_sent(drawn)] == [1, 1, 3, 3]


def test_a_party_a_week_later__the_7_day_reminder_is_planned_again(drawn):
    sweep_at(datetime(2026, 10, 29, 22, 0, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 10, 30, 12, 0, tzinfo=UTC), tick=False):
        update_reminder_settings(exchange_id=drawn.pk, exchange_at=EXCHANGE_AT + timedelta(days=7))
    sweep_at(datetime(2026, 11, 5, 23, 0, tzinfo=UTC))  # 7 days before the new date

    assert [d for d, _ in reminders_sent(drawn)] == [7, 7, 7, 7]
