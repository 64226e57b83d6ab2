from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.queue.schedule_overrides import ScheduleOverrideError
from jobs.queue.schedules import sync_schedules


class Command(BaseCommand):
    help = "Upsert django-q2 schedules of registered jobs (also runs after migrate). Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = sync_schedules()
        except ScheduleOverrideError as exc:
            raise CommandError(str(exc), returncode=2) from None
        for key in ("created", "updated", "deleted"):
            self.stdout.write(f"{key}: {', '.join(result[key]) or '-'}")
