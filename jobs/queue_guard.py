"""The cluster runs our job entry points and nothing else.

A django-q2 task names any importable function (`os.system` in a Schedule row, a
"Resubmit" of someone else's task): the worker would call it as the worker's user.
Our code queues exactly two functions, `jobs.runner.execute_queued_run(run_id=...)`
and `jobs.runner.run_scheduled_job("<registered job>", scheduled_for=...)`, with no
django-q2 hook or chain. Any other task is refused in the worker, before it runs,
recorded as a failed `jobs.refused_task` run flagged for attention (so history and
/health/ show it), and acknowledged as a django-q2 failure.

django-q2 has no veto before a task runs: `pre_execute` is the last hook, and the
worker then calls `f(*task["args"], **task["kwargs"])` inside its try. The guard puts
arguments there that refuse to unpack, so the call fails as an ordinary task failure
without `f` being called; `post_execute_in_worker` puts the real arguments back before
the task is reported. Benchmarks allow their no-op tasks with JOBS_EXTRA_QUEUE_FUNCS.
"""

import inspect
import logging
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from jobs.conf import jobs_settings
from jobs.exceptions import JobsError, UnknownJob
from jobs.registry import get_job
from jobs.runner import EXECUTE_QUEUED_RUN, RUN_SCHEDULED_JOB

logger = logging.getLogger("jobs.queue_guard")

#: The JobRun.job of a refused task (not a registered job: nothing can run it).
REFUSED_JOB = "jobs.refused_task"
_ORIGINAL_ARGS = "_jobs_refused_args"


class TaskRefused(JobsError):
    """The cluster runs registered jobs only; this task's function is not one."""


class _RefusedArguments:
    """Arguments that raise TaskRefused when the worker unpacks them (see the module doc)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __iter__(self):
        raise TaskRefused(self.reason)


def allowed_funcs() -> frozenset[str]:
    extra = jobs_settings.EXTRA_QUEUE_FUNCS
    return frozenset({EXECUTE_QUEUED_RUN, RUN_SCHEDULED_JOB, *extra})


def func_name(func: Any) -> str:
    from django_q.utils import get_func_repr

    return str(get_func_repr(func) if callable(func) else func)


def refusal_reason(task: dict[str, Any]) -> str | None:
    """Why the cluster must not run `task`, or None when it is one of ours."""
    name = func_name(task.get("func"))
    if name not in allowed_funcs():
        return f"function {name!r} is not a job entry point"
    for option in ("hook", "chain"):
        if task.get(option):
            return f"django-q2 {option} {func_name(task[option])!r} is not ours"
    if name in (EXECUTE_QUEUED_RUN, RUN_SCHEDULED_JOB):
        return _entry_point_problem(name, task)
    return None


def _entry_point_problem(name: str, task: dict[str, Any]) -> str | None:
    """Our entry points' arguments must bind to their signature and name a run or a job."""
    from jobs import runner

    args, kwargs = tuple(task.get("args") or ()), dict(task.get("kwargs") or {})
    func = getattr(runner, name.rsplit(".", 1)[1])
    try:
        bound = inspect.signature(func).bind(*args, **kwargs).arguments
    except TypeError as exc:
        return f"{name}: {exc}"
    if name == EXECUTE_QUEUED_RUN and type(bound.get("run_id")) is not int:
        return f"{name} takes run_id=<int>, not {bound.get('run_id')!r}"
    if name == RUN_SCHEDULED_JOB:
        try:
            get_job(bound.get("job_name"))
        except (UnknownJob, TypeError):
            return f"{bound.get('job_name')!r} is not a registered job"
    return None


def refuse_foreign_task(sender: Any, func: Any = None, task: dict | None = None, **kw) -> None:
    """django-q2 pre_execute handler, in the worker: veto and record a task not ours."""
    if task is None:
        return
    reason = refusal_reason(task)
    if reason is None:
        return
    logger.error("refused django-q2 task %s: %s", task.get("name"), reason)
    task[_ORIGINAL_ARGS] = task.get("args")
    task["args"] = _RefusedArguments(reason)
    task.pop("hook", None)  # the monitor would call it with the saved failure
    task.pop("chain", None)
    try:
        record_refusal(task, reason)
    except Exception:  # the veto stands even when history cannot be written
        logger.exception("could not record the refusal of task %s", task.get("name"))


def restore_arguments(sender: Any, task: dict | None = None, **kw) -> None:
    """django-q2 post_execute_in_worker handler: report the refused task's real arguments."""
    if task is not None and _ORIGINAL_ARGS in task:
        task["args"] = task.pop(_ORIGINAL_ARGS)


def record_refusal(task: dict[str, Any], reason: str) -> None:
    """A failed, flagged JobRun naming the function and where the task came from."""
    from jobs.lifecycle import new_run
    from jobs.models import JobRun

    group = task.get("group")
    now = timezone.now()
    args = task.get(_ORIGINAL_ARGS, task.get("args"))
    try:
        run = new_run(
            REFUSED_JOB,
            trigger=JobRun.Trigger.SCHEDULE if group else JobRun.Trigger.CHAIN,
            triggered_by=f"django-q2 task {task.get('name')}",
            status=JobRun.Status.FAILED,
            kwargs={
                "func": func_name(task.get("func"))[:200],
                "schedule_or_group": str(group)[:200] if group else None,
                "args": repr(args)[:500],
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
        run.save()
    except IntegrityError:  # the same task delivered twice: recorded once
        logger.info("refusal of task %s already recorded", task.get("id"))
        return
    from jobs.services.alerts import note_finished_run

    note_finished_run(run)
