"""Named reads for the operator surface (admin overview, list_jobs)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, Count, Q
from django.utils import timezone

from jobs.models import JobRun
from jobs.registry import JobSpec, all_jobs


@dataclass(frozen=True)
class JobOverview:
    spec: JobSpec
    next_run: datetime | None
    last_run: JobRun | None
    runs_7d: int
    succeeded_7d: int
    failed_7d: int
    avg_duration_7d: float | None

    @property
    def success_rate_7d(self) -> float | None:
        finished = self.succeeded_7d + self.failed_7d
        return round(100.0 * self.succeeded_7d / finished, 1) if finished else None


def job_overviews() -> list[JobOverview]:
    """Every registered job with its next run, last finished run and 7-day figures."""
    from django_q.models import Schedule

    since = timezone.now() - timedelta(days=7)
    next_runs = dict(Schedule.objects.exclude(name=None).values_list("name", "next_run"))
    stats = {
        row["job"]: row
        for row in JobRun.objects.filter(created_at__gte=since)
        .values("job")
        .annotate(
            runs=Count("id"),
            succeeded=Count("id", filter=Q(status=JobRun.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status=JobRun.Status.FAILED)),
            avg_duration=Avg("duration_seconds", filter=Q(status=JobRun.Status.SUCCEEDED)),
        )
    }
    last_runs = {
        run.job: run
        for run in JobRun.objects.exclude(status=JobRun.Status.QUEUED)
        .order_by("job", "-created_at", "-id")
        .distinct("job")
    }
    overviews = []
    for spec in all_jobs():
        row = stats.get(spec.name, {})
        overviews.append(
            JobOverview(
                spec=spec,
                next_run=next_runs.get(spec.name),
                last_run=last_runs.get(spec.name),
                runs_7d=row.get("runs", 0),
                succeeded_7d=row.get("succeeded", 0),
                failed_7d=row.get("failed", 0),
                avg_duration_7d=row.get("avg_duration"),
            )
        )
    return overviews
