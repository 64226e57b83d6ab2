"""Keep django-q2 Schedule rows in step with the job registry (editing one is a code change)."""

from django.db import transaction

from jobs.queue.schedule_overrides import effective_cron, schedule_overrides
from jobs.registry import all_jobs
from jobs.runner import q_options_for
from jobs.runs.queue_task import RUN_SCHEDULED_JOB


def sync_schedules(*, using: str = "default") -> dict[str, list[str]]:
    """Upsert one cron Schedule per scheduled job, by name; delete only schedules we own.

    We own a Schedule when its func is our scheduled-job entry point. Idempotent:
    a second call changes nothing. next_run is recomputed only when the cron changed,
    so re-syncing never skips or repeats a slot. Crons set in JOBS_SCHEDULES win over the
    code's; a bad entry raises ScheduleOverrideError before anything is written.
    """
    from django_q.models import Schedule

    created, updated, deleted = [], [], []
    overrides = schedule_overrides()
    crons = {spec.name: effective_cron(spec, overrides) for spec in all_jobs()}
    wanted = {spec.name: spec for spec in all_jobs() if crons[spec.name]}
    with transaction.atomic(using=using):
        owned = {
            s.name: s
            for s in Schedule.objects.using(using)
            .select_for_update()
            .filter(func=RUN_SCHEDULED_JOB)
        }
        for name, spec in wanted.items():
            fields = {
                "func": RUN_SCHEDULED_JOB,
                "args": repr((name,)),
                "kwargs": repr({"q_options": q_options_for(spec)}),
                "schedule_type": Schedule.CRON,
                "cron": crons[name],
                "repeats": -1,
                "cluster": spec.cluster,
                "intended_date_kwarg": "scheduled_for",
            }
            schedule = owned.get(name)
            if schedule is None:
                schedule = Schedule(name=name, **fields)
                schedule.save(using=using)  # computes next_run from the cron
                created.append(name)
                continue
            changed = [k for k, v in fields.items() if getattr(schedule, k) != v]
            if changed:
                cron_changed = "cron" in changed
                for key, value in fields.items():
                    setattr(schedule, key, value)
                if cron_changed:
                    schedule.next_run = schedule.calculate_next_run()
                schedule.save(using=using)
                updated.append(name)
        for name, schedule in owned.items():
            if name not in wanted:
                schedule.delete()
                deleted.append(name)
    return {"created": created, "updated": updated, "deleted": deleted}
