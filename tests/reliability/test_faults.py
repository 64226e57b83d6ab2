"""Injected faults: wallet and simulator at 30% failures and timeouts, SMTP down.

Each test counts what was injected on the server side and checks that the job's results
and history say exactly that.
"""

import random
import socket
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import LicensePool, Timestamp
from devkit.bibliotheca_simulator import Catalogue, Fault
from devkit.waiting import wait_until
from jobs.models import JobRun, Notification
from jobs.outbox.notifications import (
    OutgoingNotification,
    deliver_due_notifications,
    queue_notifications,
    requeue_notifications,
)
from jobs.runner import enqueue_job
from loyalty.services.wallet_sync import sync_wallet_passes
from tests.bibliotheca.conftest import drain
from tests.reliability.conftest import say
from tests.reliability.smtp_sink import SmtpSink

pytestmark = pytest.mark.django_db(transaction=True)
CHAIN = "bibliotheca.import_purchase_records_by_collection"


def test_wallet_at_30_percent_failures_and_timeouts__results_match_the_injected_faults(
    program_factory, card_factory, fake_wallet, sleep_recorder, settings, monkeypatch
):
    from loyalty.services.google_wallet import GoogleWalletClient

    client_errors: Counter = Counter()
    real_send = GoogleWalletClient._send

    def counting_send(self, method, url, payload):
        client_errors["attempts"] += 1
        try:
            return real_send(self, method, url, payload)
        except Exception as exc:
            client_errors[str(exc).rsplit(": ", 1)[-1]] += 1
            raise

    monkeypatch.setattr(GoogleWalletClient, "_send", counting_send)
    settings.LOYALTY_WALLET_TIMEOUT_SECONDS = 1.5  # a 200 on a busy 2-core machine is no timeout
    faults = fake_wallet.google.faults
    faults.failure_rate = 0.2  # 503 (after the timeout roll)
    faults.timeout_rate = 0.1  # hangs past the client's timeout
    faults.hang_seconds = 3.0  # twice the timeout: a hang is always one
    faults.seed = 30
    program = program_factory()
    now = timezone.now()
    cards = [
        card_factory(program, points=10, inactive_days=0.01, google=f"g{i}", now=now)
        for i in range(300)
    ]

    started = time.monotonic()
    result = sync_wallet_passes(card_ids=[c.pk for c in cards], sleep=sleep_recorder)
    elapsed = time.monotonic() - started
    attempts = client_errors.pop("attempts")
    unaccepted = client_errors["ConnectTimeout"] + client_errors["ConnectionError"]
    wait_until(  # a hung handler records its call when it wakes, after the client gave up
        lambda: len(fake_wallet.google.calls) >= attempts - unaccepted,
        timeout_seconds=30,
        poll_seconds=0.05,
        what="the fake wallet to record every call it accepted",
    )

    by_key: dict[str, list[int]] = {}
    for call in fake_wallet.google.calls:
        by_key.setdefault(call.key, []).append(call.status)
    statuses = Counter(s for calls in by_key.values() for s in calls)
    # A hung call is recorded when its handler wakes up, after the retry that followed it.
    synced = sorted(k for k, calls in by_key.items() if 200 in calls)
    failed = sorted(k for k, calls in by_key.items() if 200 not in calls)
    injected = statuses[503] + statuses[504]
    calls = sum(statuses.values())
    assert len(by_key) == 300
    assert all(len(c) <= 4 for c in by_key.values())
    short = {k: c for k, c in by_key.items() if k in failed and len(c) != 4}
    assert not short, f"failed cards not retried to the end: {short}"
    assert (result["synced"], result["failed"]) == (len(synced), len(failed))
    failed_ids = {c.pk for c in cards if c.google_object_id in failed}
    assert set(result["failed_card_ids"]) == failed_ids
    # What the client saw = what the fake injected; plus connections the fake never accepted
    # (its socketserver listen backlog is 5 against 32 concurrent clients): not injected.
    assert client_errors["HTTP 503"] == statuses[503]
    assert client_errors["ReadTimeout"] == statuses[504]
    assert len(sleep_recorder.delays) == sum(client_errors.values()) - len(failed)
    assert 0.2 < injected / calls < 0.4
    say(
        f"wallet: {calls} calls, injected {statuses[503]} x 503 + {statuses[504]} x hang "
        f"({injected / calls:.0%}); result synced {result['synced']}, failed {result['failed']} "
        f"(cards whose 4 attempts all failed: {len(failed)}), retries {len(sleep_recorder.delays)} "
        f"= client errors - failed cards ({unaccepted} of them connect timeouts the fake never "
        f"accepted, not injected), client saw {dict(client_errors)}, failure_rate {result['failure_rate']}, alert {result['alert']}; "
        f"{elapsed:.1f} s"
    )


@pytest.fixture
def catalogue() -> Catalogue:
    today = timezone.now().date()
    return Catalogue(start_date=today - timedelta(days=8), days=8, records_per_day=120)


def fault_schedule(requests: int, *, rate: float, seed: int) -> list[Fault]:
    """Faults at ~rate of the next `requests` requests (any endpoint).

    At most 3 faults in any 8 consecutive requests: a hop makes at most 2 requests, so no
    hop fails 5 times in a row (its retry policy's limit) and every fault is retried.
    """
    rng = random.Random(seed)
    faults, gap, recent = [], 0, []
    for _ in range(requests):
        fail = rng.random() < rate and sum(recent[-7:]) < 3
        recent.append(fail)
        if fail:
            kind = "timeout" if rng.random() < 1 / 3 else "5xx"
            faults.append(Fault(kind=kind, endpoint="any", after=gap, delay_seconds=0.6))
            gap = 0
        else:
            gap += 1
    return faults


def test_simulator_at_30_percent_failures_and_timeouts__every_fault_is_retried(
    catalogue, collection, simulator, settings
):
    """Each fault is tried again in place (3 tries of a request); a request failing all
    its tries fails its hop, which the chain's retry policy re-runs. The chain finishes
    with every record, and history shows exactly the hops that failed, each retried."""
    settings.BIBLIOTHECA_REQUEST_TIMEOUT_SECONDS = 0.3
    start = datetime.combine(catalogue.start_date, datetime.min.time(), tzinfo=UTC)
    Timestamp.objects.create(service=PURCHASE_RECORD_SERVICE, collection=collection, finish=start)
    schedule = fault_schedule(400, rate=0.3, seed=8)
    simulator.state.faults.extend(schedule)

    started = time.monotonic()
    enqueue_job(
        CHAIN,
        kwargs={"collection_id": collection.pk, "time_budget_seconds": 0},
        trigger="command",
        triggered_by="fault-test",
    )
    drain(max_runs=2000, include_apply=False)
    elapsed = time.monotonic() - started

    remaining = set(map(id, simulator.state.faults))
    used = [f for f in schedule if id(f) not in remaining]
    injected = Counter(f.kind for f in used)
    served = sum(simulator.state.counts.values())
    runs = list(JobRun.objects.filter(job=CHAIN).order_by("id"))
    failed = [r for r in runs if r.status == "failed"]
    errors = Counter(r.error.split(":", 1)[0] for r in failed)
    retries = [r for r in runs if r.trigger == "retry"]
    assert runs[-1].result.get("done") is True
    assert LicensePool.objects.count() == catalogue.total_records
    assert len(failed) == len(retries)  # every failed hop was re-run once
    assert 3 * len(failed) <= len(used)  # a hop fails only after 3 faults of one request
    assert set(errors) <= {"BadResponse", "RequestTimedOut"}
    assert {r.status for r in runs} <= {"succeeded", "failed"}
    say(
        f"simulator: {served} requests served, injected {injected['5xx']} x 5xx + "
        f"{injected['timeout']} x timeout ({len(used) / served:.0%} of requests); history: "
        f"{len(runs)} hops, {len(failed)} failed ({dict(errors)}) and retried, "
        f"{len(used) - 3 * len(failed)} or more faults absorbed by in-place retries, chain "
        f"done, {LicensePool.objects.count()} pools = {catalogue.total_records} records; "
        f"{elapsed:.1f} s"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_smtp_down__rows_retry_then_dead_then_requeued_and_sent_once(settings):
    port = free_port()  # nothing listens there yet: the mail server is down
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    recipients = [f"user{i}@example.com" for i in range(12)]
    queue_notifications(
        [
            OutgoingNotification(
                channel="email",
                recipient=r,
                template="devkit/notifications/demo_result",
                dedup_key=f"smtp-down:{r}",
                context={"items": 1, "checksum": 0},
            )
            for r in recipients
        ],
        kick=False,
    )
    rows = Notification.objects.filter(dedup_key__startswith="smtp-down:")

    passes = []
    for _ in range(4):
        passes.append(deliver_due_notifications())
        rows.filter(status="pending").update(next_attempt_at=timezone.now())  # backoff passes
    assert passes == [{"sent": 0, "retrying": 12, "dead": 0, "too_late": 0}] * 3 + [
        {"sent": 0, "retrying": 0, "dead": 12, "too_late": 0}
    ]
    assert set(rows.values_list("status", "attempts")) == {("dead", 4)}
    error = rows.first().last_error

    with SmtpSink(port) as sink:
        requeued = requeue_notifications(rows.values_list("pk", flat=True), actor="oncall")
        sent = deliver_due_notifications()
        again = deliver_due_notifications()
        wait_until(
            lambda: sum(len(rcpts) for rcpts, _ in sink.messages) >= len(recipients),
            timeout_seconds=10,
            poll_seconds=0.02,
            what="the SMTP sink to have received every message",
        )
    delivered = sorted(r for rcpts, _ in sink.messages for r in rcpts)
    assert requeued == 12 and sent == {"sent": 12, "retrying": 0, "dead": 0, "too_late": 0}
    assert again == {"sent": 0, "retrying": 0, "dead": 0, "too_late": 0}
    assert delivered == sorted(recipients)
    assert set(rows.values_list("status", "requeued_by")) == {("sent", "oncall")}
    say(
        f"SMTP down: passes {[(p['retrying'], p['dead']) for p in passes]} (retrying, dead), "
        f"error '{error[:60]}'; SMTP up: requeued {requeued}, sent {sent['sent']}, sink got "
        f"{len(sink.messages)} messages for {len(set(delivered))} recipients, second pass sent "
        f"{again['sent']}"
    )
