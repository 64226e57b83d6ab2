"""Named reads for the operator surface (admin dashboard, list_jobs, /metrics)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Aggregate, Count, FloatField, Q, Sum
from django.utils import timezone
from django_q.models import Schedule

from jobs import sql
from jobs.models import JobRun, Notification
from jobs.queue.cron_words import describe_cron
from jobs.queue.schedule_overrides import ScheduleOverrideError, effective_cron, schedule_overrides
from jobs.queue.states import queue_states
from jobs.registry import CLUSTERS, JobSpec, all_jobs

#: Runs drawn per job in the dashboard chart.
CHART_RUNS = 30


class PercentileCont(Aggregate):
    """PostgreSQL `percentile_cont(f) WITHIN GROUP (ORDER BY expr)`: an interpolated percentile."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


@dataclass(frozen=True)
class JobOverview:
    spec: JobSpec
    next_run: datetime | None
    last_run: JobRun | None
    runs_7d: int
    succeeded_7d: int
    failed_7d: int
    #: Percentiles of finished (succeeded or failed) runs' durations over 7 days, seconds.
    p50_duration_7d: float | None
    p95_duration_7d: float | None
    #: Latest runs, oldest first (chart order).
    recent_runs: list[JobRun]
    #: The cron in effect: JOBS_SCHEDULES' when set (and valid), else the code's.
    cron: str | None
    #: True when JOBS_SCHEDULES sets this job's cron.
    cron_from_settings: bool

    @property
    def success_rate_7d(self) -> float | None:
        finished = self.succeeded_7d + self.failed_7d
        return round(100.0 * self.succeeded_7d / finished, 1) if finished else None

    @property
    def schedule_words(self) -> str:
        return describe_cron(self.cron)


def job_run_stats(*, since: datetime) -> dict[str, dict]:
    """Per job since `since`: runs, succeeded, failed; durations of finished runs (count,
    total, p50, p95); one query for all jobs."""
    finished = Q(status__in=[JobRun.Status.SUCCEEDED, JobRun.Status.FAILED])
    rows = (
        JobRun.objects.filter(created_at__gte=since)
        .order_by()
        .values("job")
        .annotate(
            runs=Count("id"),
            succeeded=Count("id", filter=Q(status=JobRun.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status=JobRun.Status.FAILED)),
            finished=Count("duration_seconds", filter=finished),
            total=Sum("duration_seconds", filter=finished, default=0.0),
            p50_duration=PercentileCont("duration_seconds", fraction=0.5, filter=finished),
            p95_duration=PercentileCont("duration_seconds", fraction=0.95, filter=finished),
        )
    )
    return {row["job"]: row for row in rows}


def recent_runs_by_job(names: list[str], *, limit: int = CHART_RUNS) -> dict[str, list[JobRun]]:
    """The latest `limit` runs of each job (only the chart's fields loaded), oldest first; one
    query (sql.RECENT_RUNS_PER_JOB)."""
    by_job: dict[str, list[JobRun]] = defaultdict(list)
    for run in JobRun.objects.raw(sql.RECENT_RUNS_PER_JOB, {"jobs": list(names), "limit": limit}):
        by_job[run.job].append(run)
    for runs in by_job.values():
        runs.sort(key=lambda run: (run.created_at, run.id))
    return by_job


def job_overviews(overrides: dict[str, str | None] | None = None) -> list[JobOverview]:
    """Every registered job with its next run, last finished run, 7-day figures and chart;
    the crons in effect are `overrides` (schedule_overrides()) when given."""
    specs = all_jobs()
    since = timezone.now() - timedelta(days=7)
    next_runs = dict(Schedule.objects.exclude(name=None).values_list("name", "next_run"))
    stats = job_run_stats(since=since)
    recent = recent_runs_by_job([spec.name for spec in specs])
    last_runs = {
        run.job: run
        for run in JobRun.objects.exclude(status=JobRun.Status.QUEUED)
        .order_by("job", "-created_at", "-id")
        .distinct("job")
    }
    if overrides is None:
        try:
            overrides = schedule_overrides()
        except ScheduleOverrideError:
            overrides = {}  # sync_schedules refuses them: the code's crons stay in force
    overviews = []
    for spec in specs:
        row = stats.get(spec.name, {})
        overviews.append(
            JobOverview(
                spec=spec,
                next_run=next_runs.get(spec.name),
                last_run=last_runs.get(spec.name),
                runs_7d=row.get("runs", 0),
                succeeded_7d=row.get("succeeded", 0),
                failed_7d=row.get("failed", 0),
                p50_duration_7d=row.get("p50_duration"),
                p95_duration_7d=row.get("p95_duration"),
                recent_runs=recent.get(spec.name, []),
                cron=effective_cron(spec, overrides),
                cron_from_settings=spec.name in overrides,
            )
        )
    return overviews


def queue_depth_by_cluster() -> dict[str, int]:
    """Tasks waiting per cluster in the queue table, zero included."""
    return {name: state.depth for name, state in queue_states(CLUSTERS).items()}


def notifications_by_status() -> dict[str, int]:
    """Outbox rows per status, every status included."""
    counts = dict.fromkeys(Notification.Status.values, 0)
    rows = Notification.objects.order_by().values_list("status").annotate(n=Count("id"))
    counts.update(dict(rows))
    return counts
