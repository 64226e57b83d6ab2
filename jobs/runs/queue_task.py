"""The django-q2 tasks that carry runs: their names, and the id of the current one (it is
recorded on the run)."""

from typing import Any

#: The cluster's two entry points (in jobs.runner), stored by these names in django-q2's
#: Schedule and queue rows: rows already in a database name them, so the names stay.
EXECUTE_QUEUED_RUN = "jobs.runner.execute_queued_run"
RUN_SCHEDULED_JOB = "jobs.runner.run_scheduled_job"

_queue_task: dict[str, Any] = {}


def remember_queue_task(sender: str, task: dict[str, Any], **kwargs: Any) -> None:
    """django-q2 pre_execute handler: a worker runs one task at a time, so keep its id."""
    _queue_task["id"] = task.get("id")


def queue_task_id() -> str | None:
    return _queue_task.get("id")
