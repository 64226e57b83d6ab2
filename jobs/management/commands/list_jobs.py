from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django_q.models import Schedule

from jobs.conf import jobs_settings
from jobs.models import JobRun
from jobs.queue.schedule_overrides import ScheduleOverrideError, effective_cron, schedule_overrides
from jobs.registry import all_jobs


class Command(BaseCommand):
    help = (
        "List registered jobs: schedule (UTC), cluster, next run, last status, what a slot"
        " started late does (run once, or skip past the misfire grace) and the soft/hard"
        " time limits."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            overrides = schedule_overrides()
        except ScheduleOverrideError as exc:
            raise CommandError(str(exc), returncode=2) from None
        next_runs = dict(Schedule.objects.values_list("name", "next_run"))
        header = f"{'job':40} {'cron (UTC)':14} {'cluster':14} {'next run':17} {'last':22} rules"
        self.stdout.write(header)
        grace = int(jobs_settings.MISFIRE_GRACE_SECONDS)
        for spec in all_jobs():
            last = JobRun.objects.filter(job=spec.name).exclude(status=JobRun.Status.QUEUED).first()
            next_run = next_runs.get(spec.name)
            cron = effective_cron(spec, overrides) or "on demand"
            self.stdout.write(
                f"{spec.name:40} {cron:14} {spec.cluster:14} "
                f"{next_run.strftime('%Y-%m-%d %H:%M') if next_run else '-':17} "
                f"{last.status + ' #' + str(last.pk) if last else '-':22} "
                f"late: {'run once' if spec.run_late_once else f'skip >{grace}s'}, "
                f"limits {spec.soft_limit_seconds}/{spec.timeout_seconds}s"
                f"{'  (schedule from JOBS_SCHEDULES)' if spec.name in overrides else ''}"
            )
