"""Two real `default` clusters on one schedule: a cron slot missed 3 times runs exactly once.

django-q2 runs with catch_up False and its scheduler takes Schedule rows FOR UPDATE; the
runner dedups on the django-q2 task id and the job holds a lease. This test needs the
scheduler to wake (every 30 s), so it takes ~35 s.
"""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from devkit.waiting import wait_until
from exchanges.models import RateLimit
from jobs.models import JobRun
from jobs.queue.schedules import sync_schedules

JOB = "exchanges.cleanup_rate_limits"


def test_two_clusters_missed_slots__one_run_then_next_slot_in_future(qcluster):
    sync_schedules()
    now = timezone.now()
    Schedule.objects.exclude(name=JOB).update(next_run=now + timedelta(days=1))
    # The cluster was "down" for three daily 04:00 slots.
    Schedule.objects.filter(name=JOB).update(next_run=now - timedelta(days=3))
    RateLimit.objects.bulk_create(
        RateLimit(key=f"k{i}", expires_at=now - timedelta(minutes=1)) for i in range(7)
    )
    RateLimit.objects.create(key="live", expires_at=now + timedelta(hours=1))

    qcluster.start(["default"], scheduler_at_start=True)
    qcluster.start(["default"], scheduler_at_start=True)

    def finished_runs():
        return list(JobRun.objects.filter(job=JOB, status__in=JobRun.FINISHED))

    runs = wait_until(finished_runs, timeout_seconds=90, what=f"a finished {JOB} run")
    next_run = wait_until(
        lambda: (
            Schedule.objects.filter(name=JOB, next_run__gt=now)
            .values_list("next_run", flat=True)
            .first()
        ),
        timeout_seconds=10,
        what="the schedule to move to its next slot",
    )
    # Both schedulers wake within a second or two of each other; give the second one
    # a bounded window to (wrongly) start another run before counting.
    with pytest.raises(Exception, match="gave up"):
        wait_until(
            lambda: JobRun.objects.filter(job=JOB).count() > 1, timeout_seconds=5, what="2nd run"
        )

    assert len(runs) == 1 and JobRun.objects.filter(job=JOB).count() == 1
    assert (runs[0].trigger, runs[0].status, runs[0].result) == (
        "schedule",
        "succeeded",
        {"deleted": 7},
    )
    assert list(RateLimit.objects.values_list("key", flat=True)) == ["live"]
    # The first 04:00 after the firing, which came after `now`: not "after a fresh now",
    # which fails when 04:00 passes between the firing and this line.
    assert (next_run.astimezone(UTC).hour, next_run.minute) == (4, 0)
    assert now < next_run <= timezone.now() + timedelta(days=1)
