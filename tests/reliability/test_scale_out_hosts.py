"""Two hosts, one PostgreSQL: a `default` cluster on each, every run once, one host cut off.

"Hosts" are Linux network namespaces (tests/reliability/netns.py): each has its own
loopback, its own veth and address (10.213.x.2) and its own hostname (UTS namespace), and
reaches the shared PostgreSQL only over its veth, at 10.213.x.1 (a TCP forwarder there,
since the server listens on 127.0.0.1 only; the fixture checks that 127.0.0.1 is refused
inside). Each host runs one real `manage.py qcluster` with its own DATABASE_URL.

1. Both up: django-q2 reports one cluster per hostname (its Stat, in the shared cache).
2. A batch of `tests.record_host` runs (each appends "n host pid" to a file outside the
   database) and a due slot of every `default` schedule: every run executed exactly once,
   both hosts did work, JobRun.host says which.
3. Another batch; while host-a is running some of it, its veth goes down (a network
   partition, its processes still alive). The forwarder's TCP keepalive, standing in for
   PostgreSQL's, drops host-a's sessions; the broker's retry (1900 s) and the stale-run
   threshold (300 s) are aged out as the crash tests do, instead of waited for. host-b
   alone then fires the next schedule slot and finishes every run. A run host-a had in
   hand may have executed its body twice (host-a finished it off-line, host-b re-ran it):
   at-least-once for exactly those runs, which is why jobs keep their effects in
   transactions, leases and checkpoints. Every other run executed once.

Slow (about 30 s: two network namespaces, a cut link and the TCP keepalive that notices
it): `make test-slow`.
"""

import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ, Schedule
from django_q.status import Stat

from jobs.models import JobRun
from jobs.queue.schedules import sync_schedules
from jobs.runner import enqueue_job
from tests.conftest import TEST_SETTINGS
from tests.reliability import netns
from tests.reliability.conftest import poll, say

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOSTNAMES = ("host-a", "host-b")
BATCH = 40  # runs per batch
JOB = "tests.record_host"


@pytest.fixture
def hosts(transactional_db):
    """Two network namespaces with their own hostname, address and route to PostgreSQL."""
    netns.require_namespaces()
    port = int(connection.settings_dict["PORT"])
    made = netns.create_hosts(HOSTNAMES, forward_port=port)
    try:
        for host in made:
            seen = netns.probe(host, f"127.0.0.1:{port}", f"{host.gateway}:{port}")
            # Its own loopback has no PostgreSQL: the veth is the only way to the server.
            assert seen == {
                f"127.0.0.1:{port}": "ConnectionRefusedError",
                f"{host.gateway}:{port}": "open",
                "hostname": host.hostname,
            }, seen
        yield made
    finally:
        netns.destroy_hosts(made)


def database_url(host: netns.Host) -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{host.gateway}:{s['PORT']}/{s['NAME']}"


def cluster_hosts() -> set[str]:
    return {stat.host for stat in Stat.get_all(broker=get_broker())}


def enqueue(numbers: range, log: Path, seconds: float) -> list[int]:
    return [
        enqueue_job(JOB, kwargs={"n": n, "log": str(log), "seconds": seconds}, trigger="command").pk
        for n in numbers
    ]


def executions(log: Path) -> dict[int, list[str]]:
    """n -> the hostnames whose worker executed the body, one entry per execution."""
    done: dict[int, list[str]] = defaultdict(list)
    for line in log.read_text().splitlines():
        n, hostname, _pid = line.split()
        done[int(n)].append(hostname)
    return done


def fire_slot(names: list[str], minutes_ago: int):
    """Make every schedule due at one whole-second past moment (the accelerated clock of
    test_scale_out.py)."""
    slot = (timezone.now() - timedelta(minutes=minutes_ago)).replace(microsecond=0)
    Schedule.objects.filter(name__in=names).update(next_run=slot)
    return slot


def wait_fired(names: list[str], what: str) -> None:
    poll(
        lambda: not Schedule.objects.filter(name__in=names, next_run__lte=timezone.now()).exists(),
        timeout=120,
        what=what,
        every=0.5,
    )
    # Park them again: no natural cron minute fires behind the test's back.
    Schedule.objects.filter(name__in=names).update(next_run=timezone.now() + timedelta(days=1))


def wait_idle(what: str) -> None:
    """No run queued or running and no task left in the queue. A schedule's task becomes a
    JobRun only when a worker starts it: between the scheduler's commit (next_run and the
    queued task together) and that moment the runs alone look idle."""
    poll(
        lambda: (
            not JobRun.objects.filter(status__in=["queued", "running"]).exists()
            and not OrmQ.objects.exists()
        ),
        timeout=240,
        what=what,
        every=0.5,
    )


def test_two_hosts__every_run_once__the_other_host_finishes_when_one_is_cut_off(hosts, tmp_path):
    a, b = hosts
    started = time.monotonic()
    log = tmp_path / "executions.log"
    log.touch()
    sync_schedules()
    Schedule.objects.exclude(cluster="default").delete()  # one cluster name per host here
    names = sorted(Schedule.objects.values_list("name", flat=True))
    Schedule.objects.filter(name__in=names).update(next_run=timezone.now() + timedelta(days=1))

    for host in hosts:
        host.start_qcluster(
            "default",
            env={
                "DATABASE_URL": database_url(host),
                # django-q2 signs task payloads and cluster stats with it: the same on
                # every host, the one that queues (this test process) included.
                "SECRET_KEY": settings.SECRET_KEY,
                "DJANGO_SETTINGS_MODULE": TEST_SETTINGS,
                "Q_WORKERS": "2",
                # Two tasks per dequeue: a host that polls first cannot take a whole batch
                # (with 20 it did, and the other host had nothing to do).
                "Q_BULK": "2",
                # Slots set minutes in the past accelerate the clock; they are not late.
                "JOBS_MISFIRE_GRACE_SECONDS": str(10**9),
            },
            log_dir=tmp_path,
        )
    poll(
        lambda: cluster_hosts() >= set(HOSTNAMES),
        timeout=90,
        what="a default cluster reporting from each host",
        every=0.5,
    )
    say(
        f"{', '.join(f'{h.hostname} at {h.address} (netns {h.netns})' for h in hosts)}: "
        f"one default cluster each, PostgreSQL at {a.gateway} / {b.gateway} over the veths; "
        f"up after {time.monotonic() - started:.0f} s"
    )

    # --- 1. both hosts up -------------------------------------------------------------------
    first = enqueue(range(BATCH), log, seconds=0.2)
    slot1 = fire_slot(names, 20)
    wait_fired(names, "slot 1 to fire on every schedule")
    wait_idle("batch 1 and slot 1 to finish")

    runs = JobRun.objects.filter(pk__in=first)
    done = executions(log)
    per_host = Counter(runs.values_list("host", flat=True))
    scheduled = JobRun.objects.filter(trigger="schedule", scheduled_for=slot1)
    say(
        f"batch 1: {len(first)} runs {dict(Counter(runs.values_list('status', flat=True)))} by "
        f"{dict(per_host)}, {sum(map(len, done.values()))} executions; slot 1: "
        f"{scheduled.count()} scheduled runs by {dict(Counter(scheduled.values_list('host', flat=True)))}"
    )
    assert set(runs.values_list("status", flat=True)) == {"succeeded"}
    assert {n: hs for n, hs in done.items() if len(hs) != 1} == {}
    assert set(done) == set(range(BATCH))
    assert set(per_host) == set(HOSTNAMES), "both hosts must have done work"
    assert {r.kwargs["n"]: r.host for r in runs} == {n: hs[0] for n, hs in done.items()}
    assert sorted(scheduled.values_list("job", flat=True)) == names

    # --- 2. host-a cut off in the middle of a batch ----------------------------------------
    second = enqueue(range(BATCH, 2 * BATCH), log, seconds=0.5)
    on_a = JobRun.objects.filter(pk__in=second, host=a.hostname)
    poll(lambda: on_a.filter(status="running").exists(), timeout=60, what="host-a at work")
    a.link_down()
    cut = time.monotonic()
    slot2 = fire_slot(names, 10)
    sessions_at_cut = a.forwarder.sessions
    poll(
        lambda: a.forwarder.sessions == 0,
        timeout=60,
        what="PostgreSQL to drop host-a's sessions (TCP keepalive)",
        every=0.2,
    )
    dropped = time.monotonic() - cut
    frozen = timezone.now()  # host-a can no longer change anything in the database
    done_by_a = on_a.filter(status="succeeded").count()
    in_hand = dict(on_a.filter(status="running").values_list("pk", "kwargs"))
    # 1900 s (broker retry) pass, as in the crash tests; host-a's runs are dead already
    # (their sessions were dropped).
    with connection.cursor() as cursor:
        cursor.execute("UPDATE django_q_ormq SET lock = now() - interval '1 s' WHERE lock > now()")
        redelivered = cursor.rowcount
    say(
        f"host-a's veth down with {done_by_a} of batch 2 done and {len(in_hand)} in hand; "
        f"its {sessions_at_cut} database sessions dropped after {dropped:.1f} s; "
        f"{redelivered} claimed tasks handed out again"
    )
    wait_fired(names, "slot 2 to fire on every schedule (host-b alone)")
    wait_idle("batch 2 and slot 2 to finish on host-b")

    runs = JobRun.objects.filter(pk__in=first + second)
    done = executions(log)
    twice = {n: hs for n, hs in done.items() if len(hs) > 1}
    in_hand_n = {kwargs["n"] for kwargs in in_hand.values()}
    late = JobRun.objects.filter(finished_at__gt=frozen)
    scheduled2 = JobRun.objects.filter(trigger="schedule", scheduled_for=slot2)
    per_slot = Counter(
        JobRun.objects.filter(trigger="schedule").values_list("job", "scheduled_for")
    )
    say(
        f"batch 2: {dict(Counter(runs.filter(pk__in=second).values_list('host', flat=True)))}; "
        f"{late.count()} runs finished after the cut, by "
        f"{dict(Counter(late.values_list('host', flat=True)))}; executed twice: {twice} "
        f"(in host-a's hand: {sorted(in_hand_n)}); slot 2: {scheduled2.count()} runs by "
        f"{dict(Counter(scheduled2.values_list('host', flat=True)))}; "
        f"{time.monotonic() - started:.0f} s"
    )
    assert sessions_at_cut > 0 and a.forwarder.sessions == 0
    assert in_hand, "the cut must catch host-a in the middle of a run"
    assert set(runs.values_list("status", flat=True)) == {"succeeded"}
    assert Counter(r.kwargs["n"] for r in runs) == Counter(range(2 * BATCH))
    assert set(done) == set(range(2 * BATCH))
    assert set(twice) <= in_hand_n, "only runs host-a had in hand may run twice"
    assert all(hs == [a.hostname, b.hostname] for hs in twice.values()), twice
    assert set(late.values_list("host", flat=True)) == {b.hostname}
    assert set(runs.filter(pk__in=in_hand).values_list("host", flat=True)) <= {b.hostname}
    assert sorted(scheduled2.values_list("job", flat=True)) == names
    assert set(scheduled2.values_list("host", flat=True)) == {b.hostname}
    assert {key: n for key, n in per_slot.items() if n > 1} == {}
    assert not JobRun.objects.filter(status="failed").exists()
    a.crash()  # the partitioned host's processes are still blocked on their dead sockets
