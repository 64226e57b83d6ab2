"""The run status colours, and the dashboard's run chart (server-rendered SVG: no JavaScript)."""

from collections.abc import Sequence
from typing import Any

from jobs.health.selectors import CHART_RUNS
from jobs.models import JobRun

#: The colour of each run status, wherever a status is shown: the run list, the run page,
#: the dashboard and its charts (dark enough to read as text on the admin's background).
STATUS_COLOURS = {
    JobRun.Status.SUCCEEDED: "#2e7d32",
    JobRun.Status.FAILED: "#c62828",
    JobRun.Status.SKIPPED: "#6d6d6d",
    JobRun.Status.MISSED: "#9a6700",
    JobRun.Status.TIMED_OUT: "#ef6c00",
    JobRun.Status.RUNNING: "#1565c0",
    JobRun.Status.QUEUED: "#1565c0",
}


def run_chart(
    points: Sequence[JobRun], *, slots: int = CHART_RUNS, width: int = 180, height: int = 36
) -> dict[str, Any]:
    """What admin/jobs/run_chart.html draws: a bar per run, its height the duration relative to
    the slowest shown (a stub for a run without one, so it still shows)."""
    slot = width / slots
    shown = points[-slots:]
    longest = max((p.duration_seconds or 0.0 for p in points), default=0.0) or 1.0
    bars = []
    for index, point in enumerate(shown, start=slots - len(shown)):
        duration = point.duration_seconds
        bar_height = max(2.0, (height - 2) * (duration or 0.0) / longest)
        took = f" {duration:.2f}s" if duration is not None else ""
        bars.append(
            {
                "run": point,
                "x": f"{index * slot:.1f}",
                "y": f"{height - bar_height:.1f}",
                "height": f"{bar_height:.1f}",
                "colour": STATUS_COLOURS[point.status],
                "title": f"#{point.id} {point.status}{took} {point.created_at:%Y-%m-%d %H:%M} UTC",
            }
        )
    bar_width = f"{max(slot - 1.5, 1.0):.1f}"
    return {
        "width": width,
        "height": height,
        "baseline": height - 0.5,
        "bar_width": bar_width,
        "runs": len(points),
        "bars": bars,
    }
