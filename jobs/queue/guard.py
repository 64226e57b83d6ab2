"""The cluster runs our job entry points and nothing else: a task may name any importable
function (`os.system`), and django-q2 has no veto inside the worker (a raising `pre_execute`
is outside its `try`), so our broker hands it only what `admit` lets through. `sync=True`
tasks (tests only) pass no broker. What a refusal records: docs/operations.md."""

import functools
import inspect
import logging
from typing import Any

from django.db import IntegrityError
from django.utils import timezone
from django_q.models import Failure, OrmQ

from jobs.arguments import check_job_arguments
from jobs.conf import jobs_settings
from jobs.exceptions import BadJobArguments, UnknownJob
from jobs.models import JobRun
from jobs.runs.lifecycle import new_run, run_finished
from jobs.runs.queue_task import EXECUTE_QUEUED_RUN, RUN_SCHEDULED_JOB

logger = logging.getLogger("jobs.queue_guard")

#: The JobRun.job of a refused task (not a registered job: nothing can run it).
REFUSED_JOB = "jobs.refused_task"


def allowed_funcs() -> frozenset[str]:
    return frozenset({EXECUTE_QUEUED_RUN, RUN_SCHEDULED_JOB, *jobs_settings.EXTRA_QUEUE_FUNCS})


def func_name(func: Any) -> str:
    """A task's function as its dotted path (a task may carry the function itself)."""
    if callable(func):
        return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"
    return str(func)


def refusal_reason(task: dict[str, Any]) -> str | None:
    """Why the cluster must not run `task`, or None when it is one of ours: an entry point
    whose arguments bind to its signature and name a run, or a job that its own check
    lets run without arguments (a scheduled slot)."""
    from jobs import runner

    name = func_name(task.get("func"))
    if name not in allowed_funcs():
        return f"function {name!r} is not a job entry point"
    for option in ("hook", "chain"):
        if task.get(option):
            return f"django-q2 {option} {func_name(task[option])!r} is not ours"
    if name not in (EXECUTE_QUEUED_RUN, RUN_SCHEDULED_JOB):
        return None  # a benchmark's no-op (JOBS_EXTRA_QUEUE_FUNCS)
    func = getattr(runner, name.rsplit(".", 1)[1])
    try:
        bound = _signature(func).bind(*task.get("args") or (), **task.get("kwargs") or {})
    except TypeError as exc:
        return f"{name}: {exc}"
    run_id, job_name = bound.arguments.get("run_id"), bound.arguments.get("job_name")
    if name == EXECUTE_QUEUED_RUN and type(run_id) is not int:
        return f"{name} takes run_id=<int>, not {run_id!r}"
    if name == RUN_SCHEDULED_JOB:
        if not isinstance(job_name, str):
            return f"{job_name!r} is not a registered job"
        try:
            check_job_arguments(job_name, {})
        except UnknownJob:
            return f"{job_name!r} is not a registered job"
        except BadJobArguments as exc:
            return f"scheduled without arguments: {exc}"
    return None


#: Read once per entry point: the guard sees every task the cluster takes.
_signature = functools.cache(inspect.signature)


def admit(broker: Any, rows: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    """The dequeued (ack id, package) rows the cluster may run; each other one is
    recorded refused and deleted from the queue. A package that cannot be read is let
    through: django-q2's pusher fails it as it fails any bad signature."""
    admitted = []
    for ack_id, package in rows:
        task = OrmQ(payload=package).task  # django-q2's own reading of a package
        reason = refusal_reason(task) if "func" in task else None
        if reason is None:
            admitted.append((ack_id, package))
            continue
        logger.error("refused django-q2 task %s: %s", task.get("name"), reason)
        try:
            record_refusal(task, reason)
        except Exception:  # left locked in the queue: refused (and recorded) when it is due again
            logger.exception("could not record the refusal of task %s", task.get("name"))
            continue
        broker.fail(ack_id)
    return admitted


def record_refusal(task: dict[str, Any], reason: str) -> None:
    """A failed, flagged JobRun naming the function and where the task came from, and
    django-q2's failure row with the task's real arguments (its "Failed tasks" page)."""
    group = task.get("group")
    now = timezone.now()
    Failure.objects.get_or_create(
        id=task["id"],
        defaults={
            "name": str(task.get("name"))[:100],
            "func": func_name(task.get("func"))[:256],
            "args": task.get("args"),
            "kwargs": task.get("kwargs"),
            "group": str(group)[:100] if group else None,
            "cluster": task.get("cluster"),
            "started": task.get("started") or now,
            "stopped": now,
            "result": f"refused: {reason}",
            "success": False,
        },
    )
    try:
        run = new_run(
            REFUSED_JOB,
            trigger=JobRun.Trigger.SCHEDULE if group else JobRun.Trigger.CHAIN,
            triggered_by=f"django-q2 task {task.get('name')}",
            status=JobRun.Status.FAILED,
            kwargs={
                "func": func_name(task.get("func"))[:200],
                "schedule_or_group": str(group)[:200] if group else None,
                "args": repr(task.get("args"))[:500],
                "kwargs": repr(task.get("kwargs"))[:500],
            },
            error=f"refused: {reason}"[:10000],
            needs_attention=True,
            attention_reason=(
                f"refused task: {reason}"
                + (f" (schedule/group {group!r}: delete it)" if group else "")
            )[:500],
            task_id=task.get("id"),
            created_at=now,
            started_at=now,
            finished_at=now,
            duration_seconds=0,
        )
    except IntegrityError:  # the same task delivered twice: recorded once
        logger.info("refusal of task %s already recorded", task.get("id"))
        return
    run_finished.send(sender=JobRun, run=run)
