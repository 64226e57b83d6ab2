"""Two and four `default` clusters on one database, every schedule fired for several slots, on REAL data.

test_scale_out.py proves each (schedule, slot) fires once on an empty database; this one
starts 2 (or 4) `default` clusters plus `notifications`, `apply` and `subscriptions` and simulates SLOTS
slots: before each, a fresh batch becomes due (loyalty cards past expiration and in the
warning window, matched exchanges with reminders due now); then every schedule is made due
at a distinct past moment (the accelerated clock of test_scale_out) and the test waits for
the slot to fire and its runs to finish. It checks that nothing was processed twice:

- jobs: every (scheduled job, slot) has exactly one JobRun (trigger=schedule), none twice;
- loyalty: every due card has exactly one POINTS_EXPIRED row, the ledger invariant holds on
  every card, every card in the warning window got exactly one warning, cards not due are
  untouched, and the runs' own counters add up to the seeded figures (not just the outbox's
  dedup keys);
- exchanges: each opted-in participant got exactly one reminder per reminder row, every
  reminder row was sent by exactly one run;
- bibliotheca: the chains of every slot against a simulator (a thread in this process,
  reached over HTTP by the clusters) left one LicensePool per record, none twice, and the
  checkpoint (sampled from another connection while the clusters ran) never moved back.

Slow (over a minute per cluster count: every slot waits for the clusters' 30 s scheduler
passes): `make test-slow`.
"""

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import LicensePool, Timestamp
from devkit.bibliotheca_simulator import Catalogue
from exchanges.models import Exchange, Match, Participant, Reminder
from jobs.models import JobRun, Notification
from jobs.queue.schedules import sync_schedules
from loyalty.models import LoyaltyCard, LoyaltyTransaction
from loyalty.services.notifications import EXPIRED_TEMPLATE, WARNING_TEMPLATE
from tests.loyalty.conftest import ledger_violations
from tests.reliability.conftest import duplicate_pools, execute, poll, say, seed_due_cards

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLOTS = 2  # each slot waits for the clusters' 30 s scheduler passes
DUE_CARDS = 3_000  # inactive 380..399 days, expiration after 365: expire
WARNED_CARDS = 1_000  # inactive 352..363 days: in the 14-day warning window
ACTIVE_CARDS = 500  # inactive 10..29 days: untouched
EXCHANGES, PEOPLE = 100, 20  # every tenth person opted out of reminders
REMINDER_DAYS = (7, 3)  # two reminder rows per exchange, both due now
DAYS, RECORDS_PER_DAY = 4, 100  # Bibliotheca catalogue: DAYS days ending yesterday
REMINDER_TEMPLATE = "exchanges/notifications/reminder"


@pytest.fixture
def catalogue() -> Catalogue:
    today = timezone.now().date()
    return Catalogue(
        start_date=today - timedelta(days=DAYS), days=DAYS, records_per_day=RECORDS_PER_DAY
    )


def add_cards(
    merchant_id: int,
    *,
    prefix: str,
    count: int,
    min_days: int,
    spread: int,
    warned_days_ago: int | None = None,
) -> None:
    """`count` more customers and cards (numbers `prefix`...) inactive min_days..+spread days;
    `warned_days_ago`: each got its warning for this cycle then (due for expiration now)."""
    execute(
        "INSERT INTO loyalty_customer (name, email, phone)"
        " SELECT %s || g, lower(%s) || g || '@example.com', '' FROM generate_series(1, %s) g",
        [f"{prefix} customer ", prefix, count],
    )
    execute(
        "INSERT INTO loyalty_loyaltycard (merchant_id, customer_id, number, points_balance,"
        " stamp_count, total_points_voided, last_activity_at, is_active,"
        " google_object_id, apple_serial_number)"
        " SELECT %s, cu.id, %s || lpad(cu.id::text, 9, '0'), 1 + cu.id %% 997, 0, 0,"
        "        date_trunc('second', now()) - make_interval(days => %s + (cu.id %% %s)::int,"
        "                                                   secs => cu.id %% 3600),"
        "        true, '', ''"
        "   FROM loyalty_customer cu WHERE cu.email LIKE lower(%s) || '%%@example.com'",
        [merchant_id, prefix, min_days, spread, prefix],
    )
    execute(
        "INSERT INTO loyalty_loyaltytransaction (card_id, merchant_id, transaction_type,"
        " points_delta, points_balance_after, stamps_delta, stamps_balance_after, notes,"
        " transaction_at)"
        " SELECT id, merchant_id, 'points_earned', points_balance, points_balance, 0, 0, '',"
        "        last_activity_at FROM loyalty_loyaltycard WHERE number LIKE %s || '%%'",
        [prefix],
    )
    if warned_days_ago is not None:
        execute(
            "UPDATE loyalty_loyaltycard SET last_expiration_warning_at = now() - make_interval("
            " days => %s), expiration_warning_cycle_at = last_activity_at,"
            " points_expire_on = (now() AT TIME ZONE 'UTC')::date - %s + 14"
            " WHERE number LIKE %s || '%%'",
            [warned_days_ago, warned_days_ago, prefix],
        )


def seed_loyalty_batch(k: int, merchant_id: int | None) -> tuple[int, dict[str, set[int]]]:
    """Slot k's batch: DUE_CARDS due and WARNED_CARDS in the warning window (plus, once, the
    ACTIVE_CARDS not due); returns the merchant and the batch's card ids."""
    before = set(LoyaltyCard.objects.values_list("pk", flat=True))
    if merchant_id is None:
        merchant_id = seed_due_cards(DUE_CARDS).merchant_id  # one card per customer so far: R...
        add_cards(merchant_id, prefix="A0", count=ACTIVE_CARDS, min_days=10, spread=20)
    else:
        add_cards(
            merchant_id,
            prefix=f"D{k}",
            count=DUE_CARDS,
            min_days=380,
            spread=20,
            warned_days_ago=20,
        )
    add_cards(merchant_id, prefix=f"W{k}", count=WARNED_CARDS, min_days=352, spread=12)
    execute("ANALYZE loyalty_loyaltycard")
    new = LoyaltyCard.objects.exclude(pk__in=before)
    batch = {
        "due": set(new.filter(number__regex=r"^(R|D)").values_list("pk", flat=True)),
        "warned": set(new.filter(number__startswith="W").values_list("pk", flat=True)),
        "active": set(new.filter(number__startswith="A").values_list("pk", flat=True)),
    }
    assert len(batch["due"]) == DUE_CARDS and len(batch["warned"]) == WARNED_CARDS
    return merchant_id, batch


def seed_exchanges(k: int) -> None:
    """Slot k's batch: EXCHANGES matched exchanges, each with its reminders due now."""
    now = timezone.now()
    rows = Exchange.objects.bulk_create(
        Exchange(
            name=f"Party {k}.{i}",
            organizer_email=f"org{i}@example.com",
            timezone="Europe/Berlin",
            exchange_at=datetime(now.year + 1, 12, 18, 18, 0, tzinfo=UTC),
            state=Exchange.State.MATCHED,
        )
        for i in range(EXCHANGES)
    )
    people_rows = Participant.objects.bulk_create(
        Participant(
            exchange=x,
            name=f"Person {j}",
            email=f"p{j}.x{x.pk}@example.com",  # unique over all batches
            reminder_enabled=j % 10 != 9,
        )
        for x in rows
        for j in range(PEOPLE)
    )
    # The draw: each exchange's people in a ring (only matched people are reminded).
    Match.objects.bulk_create(
        Match(
            exchange=x,
            giver=people_rows[k * PEOPLE + j],
            receiver=people_rows[k * PEOPLE + (j + 1) % PEOPLE],
        )
        for k, x in enumerate(rows)
        for j in range(PEOPLE)
    )
    Reminder.objects.bulk_create(
        Reminder(exchange=x, days_before=d, due_at=now - timedelta(minutes=1 + i))
        for x in rows
        for i, d in enumerate(REMINDER_DAYS)
    )


def checkpoint(collection_id: int):
    return (
        Timestamp.objects.filter(collection_id=collection_id, service=PURCHASE_RECORD_SERVICE)
        .values_list("finish", flat=True)
        .first()
    )


def slot_result(job: str, slot: datetime, key: str):
    """One counter of the job's run for `slot` (None when it did not succeed)."""
    run = JobRun.objects.filter(job=job, trigger="schedule", scheduled_for=slot).first()
    return (run.result or {}).get(key) if run and run.status == "succeeded" else None


def results(job: str, key: str) -> int:
    """Sum of one counter over the job's scheduled runs that succeeded."""
    runs = JobRun.objects.filter(job=job, trigger="schedule", status="succeeded")
    return sum((r or {}).get(key, 0) or 0 for r in runs.values_list("result", flat=True))


@pytest.mark.parametrize("clusters", [2, 4])
def test_n_default_clusters_on_real_data__each_slot_once_nothing_processed_twice(
    qcluster, catalogue, collection, simulator, sampler, clusters
):
    started = time.monotonic()
    # Every schedule of every cluster (the test jobs' `tests.tick` included).
    Schedule.objects.all().delete()
    sync_schedules()
    names = sorted(Schedule.objects.values_list("name", flat=True))
    Schedule.objects.filter(name__in=names).update(next_run=timezone.now() + timedelta(days=1))

    begin = datetime.combine(catalogue.start_date, datetime.min.time(), tzinfo=UTC)
    Timestamp.objects.create(service=PURCHASE_RECORD_SERVICE, collection=collection, finish=begin)
    cards: dict[str, set[int]] = {"due": set(), "warned": set(), "active": set()}
    batches: list[dict[str, set[int]]] = []
    merchant_id = None

    def seed_slot(k: int) -> None:
        nonlocal merchant_id
        t0 = time.monotonic()
        merchant_id, batch = seed_loyalty_batch(k, merchant_id)
        batches.append(batch)
        for key, ids in batch.items():
            cards[key] |= ids
        seed_exchanges(k)
        say(
            f"slot {k + 1}: seeded {len(batch['due']):,} due + {len(batch['warned']):,} "
            f"warning-window cards{f' + {ACTIVE_CARDS:,} active' if batch['active'] else ''}, "
            f"{EXCHANGES} matched exchanges x {PEOPLE} people with {len(REMINDER_DAYS)} reminders "
            f"due now each; {time.monotonic() - t0:.1f} s"
        )

    say(
        f"a collection on the simulator at {simulator.base_url} ({catalogue.total_records:,} "
        f"records over {DAYS} days, checkpoint at {begin:%Y-%m-%d})"
    )
    slots = []
    with sampler(lambda: checkpoint(collection.pk), interval=0.1) as samples:
        # Slots set minutes in the past accelerate the clock; they are not late (misfire grace).
        env = {"Q_WORKERS": "2", "JOBS_MISFIRE_GRACE_SECONDS": str(10**9)}
        qcluster.start(
            ["default"] * clusters + ["notifications", "apply", "subscriptions"], env=env
        )
        for k in range(SLOTS):
            # New work becomes due in every slot of the simulated period.
            seed_slot(k)
            slot = (timezone.now() - timedelta(minutes=10 * (SLOTS - k))).replace(microsecond=0)
            slots.append(slot)
            Schedule.objects.filter(name__in=names).update(next_run=slot)
            poll(
                lambda: (
                    not Schedule.objects.filter(
                        name__in=names, next_run__lte=timezone.now()
                    ).exists()
                ),
                timeout=120,
                what=f"slot {k + 1} to fire on every schedule",
                every=0.5,
            )
            # A fired slot's run is recorded when its task starts, which can be after
            # every Schedule moved on: wait for the slot's runs to exist, then to end.
            fired = {(name, slot) for name in names}
            poll(
                lambda fired=fired: (
                    fired
                    <= set(
                        JobRun.objects.filter(trigger="schedule").values_list(
                            "job", "scheduled_for"
                        )
                    )
                ),
                timeout=180,
                what=f"a run of every schedule for slot {k + 1}",
                every=0.5,
            )
            poll(
                lambda: not JobRun.objects.filter(status__in=["queued", "running"]).exists(),
                timeout=180,
                what=f"every run of slot {k + 1} to finish",
                every=0.5,
            )
    opted_in = list(
        Participant.objects.filter(reminder_enabled=True).values_list("email", flat=True)
    )
    reminders = Reminder.objects.count()
    fired_at = time.monotonic() - started

    # --- every scheduled job once per slot --------------------------------------------------
    runs = JobRun.objects.filter(trigger="schedule")
    per_slot = Counter(runs.values_list("job", "scheduled_for"))
    expected = {(name, slot) for name in names for slot in slots}
    twice = {key: n for key, n in per_slot.items() if n > 1}
    missing = expected - set(per_slot)
    natural = sorted(set(per_slot) - expected)  # a real minute passing while a slot was waited for
    statuses = Counter(runs.values_list("status", flat=True))
    failed = list(JobRun.objects.filter(status="failed").values_list("job", "error")[:5])
    pids = Counter(runs.values_list("pid", flat=True))
    say(
        f"{clusters} default clusters + notifications + apply, {len(names)} schedules x {SLOTS} "
        f"slots: {runs.count()} scheduled runs ({dict(statuses)}) over {len(pids)} worker pids, "
        f"{len(natural)} extra natural-minute runs; twice: {twice}, missing: {sorted(missing)[:5]}; "
        f"all finished after {fired_at:.0f} s"
    )
    assert twice == {}
    assert missing == set()
    assert failed == [], failed

    # --- loyalty ------------------------------------------------------------------------------
    expired = LoyaltyTransaction.objects.filter(transaction_type="points_expired")
    expired_per_card = Counter(expired.values_list("card_id", flat=True))
    expired_twice = {c: n for c, n in expired_per_card.items() if n > 1}
    violations = ledger_violations()
    warned_now = set(  # by the runs of this test (the due cards were warned 20 days ago)
        LoyaltyCard.objects.filter(
            last_expiration_warning_at__gt=timezone.now() - timedelta(days=1)
        ).values_list("pk", flat=True)
    )
    warnings = Notification.objects.filter(template=WARNING_TEMPLATE)
    warning_recipients = Counter(warnings.values_list("recipient", flat=True))
    warned_emails = set(
        LoyaltyCard.objects.filter(pk__in=cards["warned"]).values_list("customer__email", flat=True)
    )
    expiry_messages = Notification.objects.filter(template=EXPIRED_TEMPLATE).count()
    active_touched = (
        LoyaltyTransaction.objects.filter(card_id__in=cards["active"])
        .exclude(transaction_type="points_earned")
        .count()
        + LoyaltyCard.objects.filter(
            pk__in=cards["active"], last_expiration_warning_at__isnull=False
        ).count()
    )
    per_slot_expired = [
        slot_result("loyalty.expire_points", slot, "cards_processed") for slot in slots
    ]
    per_slot_warned = [
        slot_result("loyalty.expire_points", slot, "warnings_sent") for slot in slots
    ]
    run_expired = results("loyalty.expire_points", "cards_processed")
    run_warned = results("loyalty.expire_points", "warnings_sent")
    say(
        f"loyalty: slot runs expired {per_slot_expired} / warned {per_slot_warned} cards; "
        f"{len(expired_per_card):,} cards expired ({expired.count():,} POINTS_EXPIRED rows, "
        f"{len(expired_twice)} cards twice), runs counted {run_expired:,} expired / {run_warned:,} "
        f"warned over {SLOTS} slots; {len(warned_now):,} cards warned, {warnings.count():,} "
        f"warnings to {len(warning_recipients):,} recipients, {expiry_messages:,} expiry messages; "
        f"ledger invariant on all {LoyaltyCard.objects.count():,} cards: {len(violations)} "
        f"violations; {active_touched} changes on active cards"
    )
    assert expired_twice == {}
    assert set(expired_per_card) == cards["due"]
    assert violations == []
    assert run_expired == DUE_CARDS * SLOTS
    if not any(job == "loyalty.expire_points" for job, _ in natural):
        # Each slot's run did exactly the batch that became due before it, nothing more.
        assert per_slot_expired == [DUE_CARDS] * SLOTS
        assert per_slot_warned == [WARNED_CARDS] * SLOTS
    assert warned_now == cards["warned"]
    assert run_warned == WARNED_CARDS * SLOTS
    assert set(warning_recipients) == warned_emails
    assert max(warning_recipients.values()) == 1
    assert expiry_messages == DUE_CARDS * SLOTS
    assert active_touched == 0

    # --- exchanges -----------------------------------------------------------------------------
    outbox = Notification.objects.filter(template=REMINDER_TEMPLATE)
    per_person = Counter(outbox.values_list("recipient", flat=True))
    wrong = {e: n for e, n in per_person.items() if n != len(REMINDER_DAYS)}
    unsent = Reminder.objects.exclude(status="sent").count()
    per_slot_rows = [slot_result("exchanges.send_due_reminders", slot, "sent") for slot in slots]
    run_rows = results("exchanges.send_due_reminders", "sent")
    run_notes = results("exchanges.send_due_reminders", "notifications")
    say(
        f"exchanges: slot runs sent {per_slot_rows} reminder rows; "
        f"{reminders - unsent}/{reminders} reminder rows sent, runs counted {run_rows} "
        f"rows / {run_notes:,} notifications; {outbox.count():,} reminders to "
        f"{len(per_person):,} recipients ({len(opted_in):,} opted in x {len(REMINDER_DAYS)}), "
        f"{len(wrong)} recipients with a count other than {len(REMINDER_DAYS)}"
    )
    assert unsent == 0
    assert set(per_person) == set(opted_in)
    assert wrong == {}
    assert outbox.count() == len(opted_in) * len(REMINDER_DAYS)
    assert run_rows == reminders
    if not any(job == "exchanges.send_due_reminders" for job, _ in natural):
        assert per_slot_rows == [EXCHANGES * len(REMINDER_DAYS)] * SLOTS
    assert run_notes == len(opted_in) * len(REMINDER_DAYS)

    # --- bibliotheca ---------------------------------------------------------------------------
    values, backwards, dupes = samples.values(), samples.backwards(), duplicate_pools()
    pools = LicensePool.objects.count()
    chain = JobRun.objects.filter(job="bibliotheca.import_purchase_records_by_collection")
    chain_statuses = Counter(chain.values_list("status", flat=True))
    fan_outs = JobRun.objects.filter(
        job="bibliotheca.import_purchase_records_for_all_collections", trigger="schedule"
    ).count()
    applies = JobRun.objects.filter(job="bibliotheca.apply_bibliographic").count()
    say(
        f"bibliotheca: {fan_outs} fan-outs, {chain.count()} chain hops ({dict(chain_statuses)}), "
        f"{applies} apply runs; {pools:,} pools = {catalogue.total_records:,} records, {dupes} "
        f"duplicates; checkpoint sampled {len(values)} times, {len(backwards)} moves backwards "
        f"({values[0]:%m-%d %H:%M} -> {values[-1]:%m-%d %H:%M}); "
        f"total {time.monotonic() - started:.0f} s"
    )
    assert dupes == 0
    assert pools == catalogue.total_records
    assert backwards == [], backwards[:5]
    assert checkpoint(collection.pk) >= begin + timedelta(days=DAYS)
