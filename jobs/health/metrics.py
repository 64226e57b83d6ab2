"""`/metrics`: Prometheus text format, read from the database at scrape time (runs happen in
qcluster workers, so the history table is the truth): every family is a gauge."""

from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from jobs.health.selectors import job_run_stats, notifications_by_status, queue_depth_by_cluster
from jobs.models import JobRun, Lease
from jobs.runs import lifecycle

#: Window of the run counts and duration figures.
WINDOW_HOURS = 24


def _gauge(name: str, documentation: str, labels: list[str], rows: Iterable) -> GaugeMetricFamily:
    """A gauge of `rows`: each the label values, then the value."""
    gauge = GaugeMetricFamily(name, documentation, labels=labels)
    for *values, value in rows:
        gauge.add_metric(values, value)
    return gauge


class JobsCollector(Collector):
    """Run counts, durations, queue depth, outbox rows and lease holders; ~5 small queries."""

    def collect(self) -> Iterator:
        since = timezone.now() - timedelta(hours=WINDOW_HOURS)
        runs = JobRun.objects.order_by()
        yield _gauge(
            "jobs_runs",
            f"Runs created in the last {WINDOW_HOURS} h, by job and current status",
            ["job", "status"],
            sorted(
                runs.filter(created_at__gte=since)
                .values_list("job", "status")
                .annotate(Count("id"))
            ),
        )
        stats = sorted(
            (job, row) for job, row in job_run_stats(since=since).items() if row["finished"]
        )
        durations = SummaryMetricFamily(
            "jobs_run_duration_seconds",
            f"Durations of runs finished (succeeded or failed) in the last {WINDOW_HOURS} h",
            labels=["job"],
        )
        for job, row in stats:
            durations.add_metric([job], count_value=row["finished"], sum_value=row["total"])
        yield durations
        yield _gauge(
            "jobs_run_duration_p50_seconds",
            f"Median duration of finished runs in the last {WINDOW_HOURS} h",
            ["job"],
            ((job, row["p50_duration"]) for job, row in stats),
        )
        yield _gauge(
            "jobs_run_duration_p95_seconds",
            f"95th percentile duration of finished runs in the last {WINDOW_HOURS} h",
            ["job"],
            ((job, row["p95_duration"]) for job, row in stats),
        )
        yield _gauge(
            "jobs_runs_running",
            "Runs running right now, by job",
            ["job"],
            sorted(
                runs.filter(status=JobRun.Status.RUNNING).values_list("job").annotate(Count("id"))
            ),
        )
        yield _gauge(
            "jobs_queue_depth",
            "Tasks waiting in the django-q2 queue",
            ["cluster"],
            queue_depth_by_cluster().items(),
        )
        yield _gauge(
            "jobs_outbox_notifications",
            "Outbox rows by status",
            ["status"],
            notifications_by_status().items(),
        )
        held = Lease.objects.filter(key__in=lifecycle.held_lease_keys()).order_by("key")
        yield _gauge(
            "jobs_lease_held",
            "1 per held lease lock (its run queued or alive)",
            ["key"],
            ((key, 1) for key in held.values_list("key", flat=True)),
        )
