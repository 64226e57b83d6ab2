"""Small server-rendered SVG charts for the admin: no JavaScript, no build step."""

from collections.abc import Sequence

from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from jobs.selectors import RunPoint

#: Bar colour per run status (the same palette as the run list).
STATUS_COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "skipped": "#9e9e9e",
    "missed": "#f9a825",
    "timed_out": "#ef6c00",
    "running": "#1565c0",
    "queued": "#90caf9",
}


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
            f'fill="{STATUS_COLOURS.get(point.status, "#555")}" data-status="{escape(point.status)}">'
            f"<title>{escape(label)}</title></rect></a>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated string is escaped above
