"""The outbox in the admin: notifications are read-only; dead or failed ones can be requeued."""

from django.contrib import admin, messages
from django.http import HttpRequest

from jobs.admin.actions import actor
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.readonly import ReadOnlyMixin
from jobs.models import Notification
from jobs.outbox.notifications import requeue_notifications


@admin.register(Notification)
class NotificationAdmin(ReadOnlyMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "channel",
        "recipient",
        "template",
        "status",
        "dead_reason",
        "attempts",
        "next_attempt_at",
        "deliver_before",
        "sent_at",
        "short_error",
    )
    list_filter = ("status", "dead_reason", "channel", "template")
    search_fields = ("recipient", "dedup_key", "subject")
    date_hierarchy = "created_at"
    actions = ["requeue"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    @admin.display(description="last error")
    def short_error(self, row: Notification) -> str:
        return row.last_error[:100]

    @admin.action(description="Requeue selected dead/failed notifications", permissions=["update"])
    def requeue(self, request: HttpRequest, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = requeue_notifications(ids, actor=actor(request))
        refused = len(ids) - count
        self.message_user(
            request,
            f"Requeued {count} notification(s)"
            + (
                f"; {refused} refused (only dead or failed ones are requeued, never one that"
                " is being sent or was sent, nor one past its deliver-before time)"
                if refused
                else "."
            ),
            messages.SUCCESS if count else messages.WARNING,
        )
