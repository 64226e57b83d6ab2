"""Two and four `default` clusters on one database run every schedule once per slot.

django-q2's scheduler runs in every cluster (about every 30 s, its own phase each) and
claims due Schedule rows with SELECT ... FOR UPDATE, then moves `next_run`. The test
accelerates the clock the only way a real cluster allows: it makes each slot due
(`next_run` = a distinct moment in the past) for every `default` schedule, waits until all
of them moved on, and repeats. Then every (job, slot) must have exactly one run.

Slow (about 90 s per cluster count: a slot fires only on the clusters' scheduler passes,
every 30 s each): `make test-slow`.
"""

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from jobs.models import JobRun
from jobs.queue.schedules import sync_schedules
from tests.reliability.conftest import poll, say

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SLOTS = 3  # each slot waits for the clusters' 30 s scheduler passes
#: Slots set minutes in the past accelerate the clock; they are not late (misfire grace).
NOT_LATE = {"JOBS_MISFIRE_GRACE_SECONDS": str(10**9)}


@pytest.mark.parametrize("clusters", [2, 4])
def test_n_default_clusters__each_schedule_runs_once_per_slot(qcluster, clusters):
    sync_schedules()
    Schedule.objects.exclude(cluster="default").delete()  # other clusters are not started
    names = sorted(Schedule.objects.values_list("name", flat=True))
    started = time.monotonic()
    qcluster.start(["default"] * clusters, env={"Q_WORKERS": "1", **NOT_LATE})

    slots = []
    for k in range(SLOTS):
        # A distinct, whole-second slot in the past: what `scheduled_for` of its runs must say.
        slot = (timezone.now() - timedelta(minutes=10 * (SLOTS - k))).replace(microsecond=0)
        slots.append(slot)
        Schedule.objects.filter(name__in=names).update(next_run=slot)
        poll(
            lambda: not Schedule.objects.filter(next_run__lte=timezone.now()).exists(),
            timeout=120,
            what=f"slot {k + 1} to fire on every schedule",
            every=0.5,
        )
    # A fired slot's run is recorded when its task starts, which can be after the last
    # Schedule moved on: wait for every (job, slot) run to exist, then for all to end.
    runs = JobRun.objects.filter(trigger="schedule")
    expected = {(name, slot) for name in names for slot in slots}
    poll(
        lambda: expected <= set(runs.values_list("job", "scheduled_for")),
        timeout=300,
        what="a run of every schedule for every slot",
        every=0.5,
    )
    poll(
        lambda: not JobRun.objects.filter(status__in=["queued", "running"]).exists(),
        timeout=300,
        what="every scheduled run to finish",
        every=0.5,
    )

    per_slot = Counter(runs.values_list("job", "scheduled_for"))
    twice = {key: n for key, n in per_slot.items() if n > 1}
    missing = expected - set(per_slot)
    # A minutely schedule's own next minute may come while the last slot's runs finish.
    natural = set(per_slot) - expected
    hosts = Counter(runs.values_list("pid", flat=True))
    statuses = Counter(runs.values_list("status", flat=True))
    say(
        f"{clusters} default clusters, {len(names)} schedules x {SLOTS} slots: {runs.count()} "
        f"scheduled runs ({dict(statuses)}), spread over {len(hosts)} worker pids, "
        f"{len(natural)} extra natural-minute runs; twice: {twice}, "
        f"missing: {sorted(missing)[:5]}; {time.monotonic() - started:.0f} s"
    )
    assert twice == {} and missing == set()
    assert all(when > slots[-1] and when.second == 0 for _, when in natural), natural
