"""A completed exchange whose date moves: re-opened if the party is ahead, never purged early."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from exchanges.models import Exchange, Match, Reminder
from exchanges.services.purge import purge_completed_exchanges, purge_day, start_of_day
from exchanges.services.rescheduling import update_reminder_settings
from jobs.models import Notification
from tests.admin_helpers import staff_client

pytestmark = pytest.mark.django_db

#: The nightly purge of 2027-01-20: the party was on 2026-12-18, completed the next day.
NOW = datetime(2027, 1, 20, 2, 0, tzinfo=UTC)
PARTY = datetime(2026, 12, 18, 23, 0, tzinfo=UTC)


@pytest.fixture
def done(make_exchange, make_participants) -> Exchange:
    """Completed on 2026-12-19, its purge warning sent on 2027-01-11 for 2027-01-18."""
    exchange = make_exchange(
        state="completed", exchange_at=PARTY, completed_at=PARTY + timedelta(hours=3)
    )
    a, b = make_participants(exchange, 2)
    Match.objects.create(exchange=exchange, giver=a, receiver=b)
    Match.objects.create(exchange=exchange, giver=b, receiver=a)
    warned_at = datetime(2027, 1, 11, 2, 0, tzinfo=UTC)
    day = purge_day(exchange, now=warned_at, retention_days=30, warning_days=7)
    exchange.purge_warning_sent_at, exchange.purge_after = warned_at, start_of_day(day, exchange)
    exchange.save()
    return exchange


def change_form(exchange: Exchange, **fields) -> dict[str, str]:
    data = {
        "name": exchange.name,
        "organizer_email": exchange.organizer_email,
        "timezone": exchange.timezone,
        "exchange_at_0": exchange.exchange_at.strftime("%Y-%m-%d"),
        "exchange_at_1": exchange.exchange_at.strftime("%H:%M:%S"),
        "reminder_days": "[7, 3, 1]",
        "_save": "Save",
    }
    for prefix in ("reminders", "exclusions"):
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    return data | fields


@time_machine.travel(NOW, tick=False)
def test_moved_to_february__reopened_in_the_admin_and_not_purged(client, done):
    staff_client(client, "olga", [("exchanges", "change_exchange"), ("exchanges", "view_exchange")])
    url = reverse("admin:exchanges_exchange_change", args=[done.pk])

    response = client.post(
        url, change_form(done, exchange_at_0="2027-02-14", exchange_at_1="19:00:00"), follow=True
    )

    assert response.status_code == 200
    assert "The new date is ahead: the exchange is matched again" in response.content.decode()
    done.refresh_from_db()
    assert (done.state, done.completed_at, done.purge_warning_sent_at, done.purge_after) == (
        "matched",
        None,
        None,
        None,
    )
    assert Reminder.objects.filter(exchange=done, status="scheduled").count() == 3
    assert purge_completed_exchanges() == {
        "warned": 0,
        "warned_ids": [],
        "purged": 0,
        "purged_exchanges": [],
    }
    assert Exchange.objects.filter(pk=done.pk).exists()


def warnings_sent() -> list[str]:
    return list(
        Notification.objects.filter(template="exchanges/notifications/purge_warning").values_list(
            "body", flat=True
        )
    )


def test_moved_to_a_later_past_date__not_purged_before_the_new_date_plus_30_days(done):
    new_date = datetime(2027, 1, 10, 23, 0, tzinfo=UTC)  # Jan 10, 18:00 in New York
    with time_machine.travel(NOW, tick=False):
        update_reminder_settings(exchange_id=done.pk, exchange_at=new_date)
        assert purge_completed_exchanges()["purged"] == 0
    done.refresh_from_db()
    assert done.state == "completed" and done.purge_warning_sent_at is None  # warned anew

    purged_on = None
    for day in range(40):
        night = NOW + timedelta(days=day)
        warnings = warnings_sent()  # what the organizer read before the purge (which takes them)
        with time_machine.travel(night, tick=False):
            if purge_completed_exchanges()["purged"]:
                purged_on = night
                break

    assert purged_on is not None and purged_on >= new_date + timedelta(days=30)
    assert len(warnings) == 1  # the new warning; its day was kept
    promised = warnings[0].split("permanently on ")[1].split(".")[0]
    assert promised == purged_on.astimezone(done.zone).strftime("%A %d %B %Y")


@time_machine.travel(NOW, tick=False)
def test_purge__rechecks_the_date_at_delete_time(done):
    # A date moved by any path (here straight in the table) after the warning was sent.
    Exchange.objects.filter(pk=done.pk).update(exchange_at=NOW - timedelta(days=10))

    assert purge_completed_exchanges()["purged"] == 0
    assert Exchange.objects.filter(pk=done.pk).exists()


@time_machine.travel(NOW, tick=False)
def test_purge__deletes_on_the_promised_day(done):
    assert done.purge_after == datetime(2027, 1, 18, 5, 0, tzinfo=UTC)  # Jan 18 in New York

    assert purge_completed_exchanges()["purged"] == 1


def test_zone_corrected_after_the_warning__never_purged_before_a_promised_day(
    client, make_exchange
):
    """Set up in UTC (the default) and warned for Tuesday 19 January; the organizer then
    corrects the zone to New York, where the 02:00 UTC run of that Tuesday is still Monday."""
    exchange = make_exchange(
        timezone="UTC", state="completed", exchange_at=PARTY, completed_at=PARTY
    )
    with time_machine.travel(datetime(2027, 1, 11, 2, 0, tzinfo=UTC), tick=False):
        assert purge_completed_exchanges()["warned"] == 1
    url = reverse("admin:exchanges_exchange_change", args=[exchange.pk])
    with time_machine.travel(datetime(2027, 1, 11, 9, 0, tzinfo=UTC), tick=False):
        staff_client(
            client, "olga", [("exchanges", "change_exchange"), ("exchanges", "view_exchange")]
        )
        response = client.post(url, change_form(exchange, timezone="America/New_York"), follow=True)
    assert "a new warning will be sent before the purge" in response.content.decode()
    exchange.refresh_from_db()
    assert exchange.timezone == "America/New_York"

    purged_on = None
    for day in range(40):
        night = datetime(2027, 1, 12, 2, 0, tzinfo=UTC) + timedelta(days=day)
        warnings = warnings_sent()
        with time_machine.travel(night, tick=False):
            if purge_completed_exchanges()["purged"]:
                purged_on = night
                break

    assert purged_on is not None
    local_day = purged_on.astimezone(ZoneInfo("America/New_York")).date()
    # the new warning names the same day, now in New York: the organizer is not emailed twice
    [warning] = warnings
    promised = warning.split("permanently on ")[1].split(".")[0]
    assert promised == "Tuesday 19 January 2027"
    assert local_day == date(2027, 1, 19)  # 21:00 in New York, not the Monday evening before
