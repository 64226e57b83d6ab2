from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.conf import jobs_settings
from jobs.health.selectors import job_overviews
from jobs.queue.schedule_overrides import ScheduleOverrideError, schedule_overrides


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
        header = f"{'job':40} {'cron (UTC)':14} {'cluster':14} {'next run':17} {'last':22} rules"
        self.stdout.write(header)
        grace = int(jobs_settings.MISFIRE_GRACE_SECONDS)
        for job in job_overviews(overrides):
            spec, last = job.spec, job.last_run
            self.stdout.write(
                f"{spec.name:40} {job.cron or 'on demand':14} {spec.cluster:14} "
                f"{job.next_run.strftime('%Y-%m-%d %H:%M') if job.next_run else '-':17} "
                f"{last.status + ' #' + str(last.pk) if last else '-':22} "
                f"late: {'run once' if spec.run_late_once else f'skip >{grace}s'}, "
                f"limits {spec.soft_limit_seconds}/{spec.timeout_seconds}s"
                f"{'  (schedule from JOBS_SCHEDULES)' if job.cron_from_settings else ''}"
            )
