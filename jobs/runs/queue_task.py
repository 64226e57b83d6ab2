"""The django-q2 task carrying the current run: its id is recorded on the run."""

from typing import Any

_queue_task: dict[str, Any] = {}


def remember_queue_task(sender: str, task: dict[str, Any], **kwargs: Any) -> None:
    """django-q2 pre_execute handler: a worker runs one task at a time, so keep its id."""
    _queue_task.clear()
    _queue_task.update(id=task.get("id"), name=task.get("name"))


def queue_task_id() -> str | None:
    return _queue_task.get("id")
