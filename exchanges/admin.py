"""Admin of the exchanges app: exchanges with their reminders, participants, tokens.

Actions that run a job queue it through jobs.runner.enqueue_job (trigger `admin`, the
user recorded), so the run shows in history like a scheduled one; "Match" runs in the
request because the organizer wants the answer (or the reason it is impossible) now.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from exchanges.exceptions import ExchangesError
from exchanges.models import Exchange, Exclusion, MagicToken, Participant, Reminder
from exchanges.services.matching import match_exchange
from exchanges.services.reminder_planning import plan_reminders
from jobs.models import JobRun
from jobs.runner import enqueue_job

RUN_PERMISSION = "jobs.run_job"


class ReminderInline(admin.TabularInline):
    model = Reminder
    fields = ("days_before", "due_at", "local_due", "status", "sent_at", "recipients")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # planned from reminder_days; edit those instead

    @admin.display(description="due (local)")
    def local_due(self, reminder: Reminder) -> str:
        return reminder.due_at.astimezone(reminder.exchange.zone).strftime("%Y-%m-%d %H:%M %Z")


class ExclusionInline(admin.TabularInline):
    model = Exclusion
    fk_name = "exchange"
    extra = 0


@admin.register(Exchange)
class ExchangeAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "local_date", "timezone", "organizer_email", "completed_at")
    list_filter = ("state", "timezone")
    search_fields = ("name", "organizer_email")
    readonly_fields = ("state", "completed_at", "purge_warning_sent_at", "local_date")
    fields = (
        "name",
        "organizer_email",
        "timezone",
        "exchange_at",
        "local_date",
        "reminder_days",
        "state",
        "completed_at",
        "purge_warning_sent_at",
    )
    inlines = [ReminderInline, ExclusionInline]
    actions = ["match", "send_reminders_now", "complete", "purge_now"]

    @admin.display(description="exchange date (local)", ordering="exchange_at")
    def local_date(self, exchange: Exchange) -> str:
        if exchange.exchange_at is None:
            return "-"
        return exchange.local_exchange_at.strftime("%Y-%m-%d %H:%M %Z")

    def save_model(self, request: HttpRequest, obj: Exchange, form, change: bool) -> None:
        """Editing the date or the intervals of a matched exchange re-plans its reminders."""
        super().save_model(request, obj, form, change)
        if change and obj.state == Exchange.State.MATCHED:
            if {"exchange_at", "reminder_days", "timezone"} & set(form.changed_data):
                result = plan_reminders(exchange_id=obj.pk)
                self.message_user(request, f"Reminders re-planned: {result}")

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    def _queue(self, request: HttpRequest, name: str, kwargs: dict, what: str) -> None:
        run = enqueue_job(
            name, kwargs=kwargs, trigger=JobRun.Trigger.ADMIN, triggered_by=request.user.username
        )
        self.message_user(request, f"Queued {name} as run #{run.pk} ({what}).")

    @admin.action(description="Match (draw names)", permissions=["change"])
    def match(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> None:
        for exchange in queryset:
            try:
                result = match_exchange(exchange_id=exchange.pk)
            except ExchangesError as exc:
                self.message_user(request, f"{exchange}: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{exchange}: matched {result['participants']} participants,"
                f" {result['notified']} notified",
            )

    @admin.action(description="Send due reminders now", permissions=["run"])
    def send_reminders_now(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> None:
        ids = list(queryset.filter(state=Exchange.State.MATCHED).values_list("pk", flat=True))
        if not ids:
            self.message_user(request, "No matched exchange selected.", messages.WARNING)
            return
        for pk in ids:
            self._queue(request, "exchanges.send_due_reminders", {"exchange_id": pk}, f"#{pk}")

    @admin.action(description="Complete", permissions=["run"])
    def complete(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> None:
        ids = list(queryset.filter(state=Exchange.State.MATCHED).values_list("pk", flat=True))
        if not ids:
            self.message_user(request, "No matched exchange selected.", messages.WARNING)
            return
        self._queue(
            request,
            "exchanges.auto_complete",
            {"exchange_ids": ids, "include_future": True},
            f"{len(ids)} exchange(s)",
        )

    @admin.action(description="Purge now (asks first)", permissions=["run", "delete"])
    def purge_now(self, request: HttpRequest, queryset: QuerySet[Exchange]):
        eligible = queryset.filter(state=Exchange.State.COMPLETED)
        if not eligible.exists():
            self.message_user(request, "Only completed exchanges can be purged.", messages.WARNING)
            return None
        if request.POST.get("confirmed") == "yes":
            ids = list(eligible.values_list("pk", flat=True))
            with transaction.atomic():
                self._queue(
                    request, "exchanges.purge_completed", {"exchange_ids": ids}, f"{len(ids)}"
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Purge exchanges now?",
            "opts": self.model._meta,
            "exchanges": eligible.prefetch_related("participants"),
            "skipped": queryset.count() - eligible.count(),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/exchanges/exchange/purge_confirmation.html", context
        )


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "exchange", "reminder_enabled", "withdrawn_at")
    list_filter = ("reminder_enabled", "exchange__state")
    search_fields = ("name", "email", "exchange__name")
    raw_id_fields = ("exchange",)


@admin.register(MagicToken)
class MagicTokenAdmin(admin.ModelAdmin):
    """Read-only: tokens are created by the login flow and removed by cleanup_tokens."""

    list_display = ("email", "created_at", "expires_at", "used_at")
    search_fields = ("email",)
    exclude = ("token_hash",)  # never shown, even hashed

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
