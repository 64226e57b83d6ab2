"""Small server-rendered SVG charts for the admin: no JavaScript, no build step."""

from collections.abc import Sequence

from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from jobs.health.selectors import RunPoint
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


def status_css() -> SafeString:
    """A `--status-<status>` variable and a `.status-<status>` text colour per status, for
    the pages' own styles (the dashboard's health colours use the same variables)."""
    pairs = STATUS_COLOURS.items()
    variables = " ".join(f"--status-{status}: {colour};" for status, colour in pairs)
    classes = " ".join(f".status-{status} {{ color: {colour}; }}" for status, colour in pairs)
    return mark_safe(f":root {{ {variables} }}\n{classes}")  # noqa: S308 - constants


def run_bars_svg(
    points: Sequence[RunPoint], *, slots: int = 30, width: int = 180, height: int = 36
) -> SafeString:
    """Bars oldest to newest: height = duration (relative to the slowest shown), colour = status.

    Runs without a duration (queued, running, skipped) get a short stub so they still show.
    Each bar links to its run and carries a tooltip (status, duration, date).
    """
    slot = width / slots
    bar = max(slot - 1.5, 1.0)
    longest = max((p.duration_seconds or 0.0 for p in points), default=0.0) or 1.0
    parts = [
        f'<svg class="run-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="last {len(points)} runs">',
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" stroke="#ddd"/>',
    ]
    offset = slots - len(points[-slots:])
    for index, point in enumerate(points[-slots:]):
        duration = point.duration_seconds
        bar_height = max(2.0, (height - 2) * (duration or 0.0) / longest)
        x = (offset + index) * slot
        label = (
            f"#{point.id} {point.status}"
            + (f" {duration:.2f}s" if duration is not None else "")
            + f" {point.created_at:%Y-%m-%d %H:%M} UTC"
        )
        url = reverse("admin:jobs_jobrun_change", args=[point.id])
        parts.append(
            f'<a href="{escape(url)}"><rect x="{x:.1f}" y="{height - bar_height:.1f}" '
            f'width="{bar:.1f}" height="{bar_height:.1f}" '
            f'fill="{STATUS_COLOURS[point.status]}" data-status="{escape(point.status)}">'
            f"<title>{escape(label)}</title></rect></a>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated string is escaped above
