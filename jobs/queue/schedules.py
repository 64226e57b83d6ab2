"""Keep django-q2 Schedule rows in step with the job registry (editing one is a code change)."""

from django.db import transaction
from django_q.models import Schedule

from jobs.queue.schedule_overrides import effective_cron, schedule_overrides
from jobs.registry import all_jobs
from jobs.runner import q_options_for
from jobs.runs.queue_task import RUN_SCHEDULED_JOB


def sync_schedules(*, using: str = "default") -> dict[str, list[str]]:
    """Upsert one cron Schedule per scheduled job, by name; delete only those we own (their
    func is our entry point). Idempotent; next_run is recomputed only when the cron changed,
    so re-syncing never skips or repeats a slot. A bad JOBS_SCHEDULES writes nothing."""
    created, updated = [], []
    overrides = schedule_overrides()
    wanted = {spec.name: spec for spec in all_jobs() if effective_cron(spec, overrides)}
    with transaction.atomic(using=using):
        ours = Schedule.objects.using(using).select_for_update().filter(func=RUN_SCHEDULED_JOB)
        owned = {schedule.name: schedule for schedule in ours}
        for name, spec in wanted.items():
            fields = {
                "func": RUN_SCHEDULED_JOB,
                "args": repr((name,)),
                "kwargs": repr({"q_options": q_options_for(spec)}),
                "schedule_type": Schedule.CRON,
                "cron": effective_cron(spec, overrides),
                "repeats": -1,
                "cluster": spec.cluster,
                "intended_date_kwarg": "scheduled_for",
            }
            schedule = owned.get(name)
            if schedule is None:
                Schedule(name=name, **fields).save(using=using)  # next_run from the cron
                created.append(name)
                continue
            changed = {k: v for k, v in fields.items() if getattr(schedule, k) != v}
            if changed:
                for key, value in changed.items():
                    setattr(schedule, key, value)
                if "cron" in changed:
                    schedule.next_run = schedule.calculate_next_run()
                schedule.save(using=using)
                updated.append(name)
        deleted = [name for name in owned if name not in wanted]
        Schedule.objects.using(using).filter(pk__in=[owned[name].pk for name in deleted]).delete()
    return {"created": created, "updated": updated, "deleted": deleted}
