from django.apps import AppConfig
from django.core.management.base import CommandError
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks
        from django.utils.module_loading import autodiscover_modules
        from django_q.signals import pre_execute

        from jobs.conf import check_number_settings
        from jobs.outbox.alerts import check_alert_settings, note_finished_run
        from jobs.runs.lifecycle import run_finished
        from jobs.runs.queue_task import remember_queue_task

        # Every app declares its jobs in tasks.py; importing them fills the registry.
        autodiscover_modules("tasks")
        pre_execute.connect(remember_queue_task, dispatch_uid="jobs.remember_task")
        run_finished.connect(note_finished_run, dispatch_uid="jobs.alerts")
        post_migrate.connect(_sync_schedules_after_migrate, sender=self)
        checks.register(check_alert_settings)
        checks.register(check_number_settings)


def _sync_schedules_after_migrate(sender, using: str = "default", **kwargs) -> None:
    from jobs.queue.schedule_overrides import ScheduleOverrideError
    from jobs.queue.schedules import sync_schedules

    try:
        sync_schedules(using=using)
    except ScheduleOverrideError as exc:  # `migrate` stops with the one line, not a traceback
        raise CommandError(str(exc), returncode=2) from None
