"""`/metrics`: Prometheus text format, read from the database at scrape time.

A custom collector instead of process-local counters: runs happen in qcluster workers,
not in the web process, so the truth is the history table. Every family is a gauge of
the current state (scrape it as often as you like; `increase()` does not apply).
"""

from collections.abc import Iterator
from datetime import timedelta

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from jobs.health.selectors import (
    held_leases,
    job_run_stats,
    notifications_by_status,
    queue_depth_by_cluster,
    runs_by_job_and_status,
)
from jobs.models import JobRun

#: Window of the run counts and duration figures.
WINDOW_HOURS = 24


class JobsCollector(Collector):
    """Run counts, durations, queue depth, outbox rows and lease holders; ~5 small queries."""

    def collect(self) -> Iterator:
        since = timezone.now() - timedelta(hours=WINDOW_HOURS)

        runs = GaugeMetricFamily(
            "jobs_runs",
            f"Runs created in the last {WINDOW_HOURS} h, by job and current status",
            labels=["job", "status"],
        )
        for (job, status), count in sorted(runs_by_job_and_status(since=since).items()):
            runs.add_metric([job, status], count)
        yield runs
        yield from _durations(since)

        running = GaugeMetricFamily(
            "jobs_runs_running", "Runs running right now, by job", labels=["job"]
        )
        for job, count in sorted(
            runs_by_job_and_status(since=None, statuses=[JobRun.Status.RUNNING]).items()
        ):
            running.add_metric([job[0]], count)
        yield running

        queue = GaugeMetricFamily(
            "jobs_queue_depth", "Tasks waiting in the django-q2 queue", labels=["cluster"]
        )
        for cluster, depth in queue_depth_by_cluster().items():
            queue.add_metric([cluster], depth)
        yield queue

        outbox = GaugeMetricFamily(
            "jobs_outbox_notifications", "Outbox rows by status", labels=["status"]
        )
        for status, count in notifications_by_status().items():
            outbox.add_metric([status], count)
        yield outbox

        leases = GaugeMetricFamily(
            "jobs_lease_held", "1 per held lease lock (its run queued or alive)", labels=["key"]
        )
        for lease in held_leases():
            leases.add_metric([lease.key], 1)
        yield leases


def _durations(since) -> Iterator:
    """Durations of the runs finished since `since`: a summary, and its p50 / p95 per job."""
    durations = SummaryMetricFamily(
        "jobs_run_duration_seconds",
        f"Durations of runs finished (succeeded or failed) in the last {WINDOW_HOURS} h",
        labels=["job"],
    )
    p50 = GaugeMetricFamily(
        "jobs_run_duration_p50_seconds",
        f"Median duration of finished runs in the last {WINDOW_HOURS} h",
        labels=["job"],
    )
    p95 = GaugeMetricFamily(
        "jobs_run_duration_p95_seconds",
        f"95th percentile duration of finished runs in the last {WINDOW_HOURS} h",
        labels=["job"],
    )
    for job, row in sorted(job_run_stats(since=since).items()):
        if row["finished"]:
            durations.add_metric([job], count_value=row["finished"], sum_value=row["total"])
            p50.add_metric([job], row["p50_duration"])
            p95.add_metric([job], row["p95_duration"])
    yield durations
    yield p50
    yield p95
