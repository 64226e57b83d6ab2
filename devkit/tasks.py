"""The demo's job: `make demo`, the smoke tests and the screenshots run it; never scheduled.

Declared here, in the dev kit, so production (which does not install devkit) has no such job.
"""

import time
from typing import Annotated, Any

from jobs.arguments import Range
from jobs.outbox.notifications import OutgoingNotification, queue_notification
from jobs.registry import job
from jobs.runs.progress import report_progress
from jobs.runs.retry import RetryPolicy


@job("devkit.demo_job", retry=RetryPolicy(max_attempts=2, base_seconds=1), timeout_seconds=60)
def demo_job(
    *,
    items: Annotated[int, Range(min=0, max=10_000_000)] = 1000,
    notify: str = "",
    fail: bool = False,
    step_seconds: Annotated[float, Range(min=0, max=10)] = 0,
) -> dict[str, Any]:
    """A small job for the demo and smoke tests: sums numbers, optionally emails the result.

    It reports progress in 5 steps; `step_seconds` pauses between them so the admin run
    page and `manage.py run_job` have something to show.
    """
    if fail:
        raise RuntimeError("demo_job asked to fail")
    checksum = 0
    steps = 5
    for step in range(steps):
        checksum += sum(range(items * step // steps, items * (step + 1) // steps))
        report_progress(done=items * (step + 1) // steps, total=items, unit="items")
        if step_seconds and step < steps - 1:
            time.sleep(min(step_seconds, 10))
    notified = False
    if notify:
        notified = queue_notification(
            OutgoingNotification(
                channel="email",
                recipient=notify,
                template="devkit/notifications/demo_result",
                dedup_key=f"demo_result:{notify}:{items}",
                context={"items": items, "checksum": checksum},
            )
        )
    return {"items": items, "checksum": checksum, "notified": notified}
