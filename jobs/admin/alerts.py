"""Alerts in the admin: read-only, as nobody edits or deletes what staff were told (an
alert closes itself when its job next succeeds: jobs.outbox.alerts)."""

from django.contrib import admin
from django.utils.html import format_html

from jobs.admin.actions import run_url
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.readonly import ReadOnlyMixin
from jobs.models import Alert


@admin.register(Alert)
class AlertAdmin(ReadOnlyMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("id", "job", "kind", "count", "opened_at", "resolved_at", "short_reason")
    list_display_links = ("id", "job")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("job",)
    date_hierarchy = "opened_at"
    fields = (
        "job",
        "kind",
        "count",
        "reason",
        "opened_at",
        "last_seen_at",
        "resolved_at",
        "first_run_link",
        "last_run_link",
        "resolved_by_link",
    )

    @admin.display(description="reason")
    def short_reason(self, alert: Alert) -> str:
        return alert.reason if len(alert.reason) <= 90 else f"{alert.reason[:87]}..."

    def _run_link(self, run) -> str:
        if run is None:
            return "-"
        return format_html('<a href="{}">#{} ({})</a>', run_url(run), run.pk, run.status)

    @admin.display(description="first run")
    def first_run_link(self, alert: Alert) -> str:
        return self._run_link(alert.first_run)

    @admin.display(description="last run")
    def last_run_link(self, alert: Alert) -> str:
        return self._run_link(alert.last_run)

    @admin.display(description="resolved by")
    def resolved_by_link(self, alert: Alert) -> str:
        return self._run_link(alert.resolved_by)
