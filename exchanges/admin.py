"""Admin of the exchanges app: exchanges with their reminders, participants, tokens.

Every action runs a job through jobs.runner.enqueue_job (trigger `admin`, the user
recorded as triggered_by), so it shows in history like a scheduled run. Actions that
change or delete data for good ("Match", "Complete", "Purge now") show a confirmation
page first; an action that created one run lands on that run's page, where its status
and progress refresh live.
"""

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from exchanges.models import (
    Exchange,
    Exclusion,
    MagicToken,
    Participant,
    Reminder,
    validate_exchange_date,
    validate_reminder_days,
    validate_timezone_name,
)
from exchanges.services.matching import MATCHABLE_STATES
from exchanges.services.reminder_planning import plan_reminders
from jobs.admin import actor
from jobs.admin_lookups import DeclaredLookupsOnly
from jobs.form_fields import StrictJSONField
from jobs.models import JobRun
from jobs.runner import enqueue_job

RUN_PERMISSION = "jobs.run_job"
CONFIRM_TEMPLATE = "admin/exchanges/exchange/action_confirmation.html"


def run_url(run: JobRun) -> str:
    return reverse("admin:jobs_jobrun_change", args=[run.pk])


def _about(run: JobRun) -> str:
    exchange_id = run.kwargs.get("exchange_id")
    return f" (exchange {exchange_id})" if exchange_id is not None else ""


def counts_by_exchange(model: type[Model], ids: Iterable[int], **filters: Any) -> dict[int, int]:
    """How many `model` rows each exchange has (one query)."""
    return dict(
        model.objects.filter(exchange_id__in=list(ids), **filters)
        .values("exchange_id")
        .annotate(n=Count("pk"))
        .values_list("exchange_id", "n")
    )


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


class ExchangeForm(forms.ModelForm):
    """The model's checks as form-field checks: a bad value never reaches the instance, so
    the page shown again with the errors (local date, reminders) renders the saved values."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        checks = {
            "timezone": validate_timezone_name,
            "exchange_at": validate_exchange_date,
            "reminder_days": validate_reminder_days,
        }
        for name, check in checks.items():
            if name in self.fields:
                self.fields[name].validators.append(check)


@admin.register(Exchange)
class ExchangeAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    form = ExchangeForm
    formfield_overrides = {models.JSONField: {"form_class": StrictJSONField}}
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

    # An action listing several permissions is offered when the user has *any* of them;
    # these combine them so that both are needed.
    def has_run_and_change_permission(self, request: HttpRequest) -> bool:
        return self.has_run_permission(request) and self.has_change_permission(request)

    def has_run_and_delete_permission(self, request: HttpRequest) -> bool:
        return self.has_run_permission(request) and self.has_delete_permission(request)

    # -- actions ---------------------------------------------------------------------

    @admin.action(description="Match (draw names; asks first)", permissions=["run_and_change"])
    def match(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> HttpResponse | None:
        """Confirm what will be drawn, then queue one exchanges.match_exchange run each."""
        eligible = list(queryset.filter(state__in=MATCHABLE_STATES).order_by("pk"))
        if not eligible:
            self.message_user(
                request,
                "Only draft or registration_open exchanges can be matched.",
                messages.WARNING,
            )
            return None
        ids = [e.pk for e in eligible]
        if not self._confirmed(request):
            active = counts_by_exchange(Participant, ids, withdrawn_at__isnull=True)
            exclusions = counts_by_exchange(Exclusion, ids)
            rows = []
            for e in eligible:
                detail = f"{active.get(e.pk, 0)} active participant(s), {exclusions.get(e.pk, 0)} exclusion(s)"
                if active.get(e.pk, 0) < 2:
                    detail += " - fewer than 2 active participants: this draw will fail"
                rows.append((e, detail))
            pending = JobRun.objects.filter(
                job="exchanges.match_exchange",
                status__in=[JobRun.Status.QUEUED, JobRun.Status.RUNNING],
                kwargs__exchange_id__in=ids,
            ).order_by("pk")
            return self._confirmation(
                request,
                queryset,
                eligible,
                rows,
                action="match",
                title="Match these exchanges?",
                intro=(
                    "Names are drawn among the active (not withdrawn) participants, honouring"
                    " the exclusions; each giver gets an email with their receiver and the"
                    " reminders are planned. A draw cannot be undone."
                ),
                skipped_note="are not draft or registration_open and will be left alone",
                submit="Yes, draw names",
                pending=pending,
            )
        runs = [self._queue(request, "exchanges.match_exchange", {"exchange_id": pk}) for pk in ids]
        return self._report(request, runs, what="match")

    @admin.action(description="Send due reminders now", permissions=["run"])
    def send_reminders_now(
        self, request: HttpRequest, queryset: QuerySet[Exchange]
    ) -> HttpResponse | None:
        """No confirmation: only due reminders go, and each at most once (dedup keys)."""
        ids = list(
            queryset.filter(state=Exchange.State.MATCHED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not ids:
            self.message_user(request, "No matched exchange selected.", messages.WARNING)
            return None
        runs = [
            self._queue(request, "exchanges.send_due_reminders", {"exchange_id": pk}) for pk in ids
        ]
        return self._report(request, runs, what="send due reminders")

    @admin.action(description="Complete (asks first)", permissions=["run"])
    def complete(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> HttpResponse | None:
        """Confirm (completing is final and skips reminders), then queue one run for all."""
        eligible = list(queryset.filter(state=Exchange.State.MATCHED).order_by("pk"))
        if not eligible:
            self.message_user(request, "No matched exchange selected.", messages.WARNING)
            return None
        ids = [e.pk for e in eligible]
        if not self._confirmed(request):
            scheduled = counts_by_exchange(Reminder, ids, status=Reminder.Status.SCHEDULED)
            rows = [
                (
                    e,
                    f"exchange date {self.local_date(e)}, "
                    f"{scheduled.get(e.pk, 0)} scheduled reminder(s) will be skipped",
                )
                for e in eligible
            ]
            return self._confirmation(
                request,
                queryset,
                eligible,
                rows,
                action="complete",
                title="Complete these exchanges?",
                intro=(
                    "These matched exchanges become completed now, even if their date is still"
                    " ahead: their scheduled reminders are skipped and they are purged 30 days"
                    " from now. Completing cannot be undone."
                ),
                skipped_note="are not matched and will be left alone",
                submit="Yes, complete now",
            )
        run = self._queue(
            request, "exchanges.auto_complete", {"exchange_ids": ids, "include_future": True}
        )
        return self._report(request, [run], what="complete")

    @admin.action(description="Purge now (asks first)", permissions=["run_and_delete"])
    def purge_now(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> HttpResponse | None:
        """Confirm (the rows are deleted for good), then queue one run for all."""
        eligible = list(queryset.filter(state=Exchange.State.COMPLETED).order_by("pk"))
        if not eligible:
            self.message_user(request, "Only completed exchanges can be purged.", messages.WARNING)
            return None
        ids = [e.pk for e in eligible]
        if not self._confirmed(request):
            people = counts_by_exchange(Participant, ids)
            rows = [
                (
                    e,
                    f"completed {e.completed_at:%Y-%m-%d %H:%M} UTC, {people.get(e.pk, 0)} participants",
                )
                for e in eligible
            ]
            return self._confirmation(
                request,
                queryset,
                eligible,
                rows,
                action="purge_now",
                title="Purge exchanges now?",
                intro=(
                    "These completed exchanges and all their participants, draws, exclusions"
                    " and reminders will be deleted for good. Organizers get no further warning."
                ),
                skipped_note="are not completed and will be left alone",
                submit="Yes, purge now",
            )
        run = self._queue(request, "exchanges.purge_completed", {"exchange_ids": ids})
        return self._report(request, [run], what="purge")

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _confirmed(request: HttpRequest) -> bool:
        return request.POST.get("post") == "yes"

    def _queue(self, request: HttpRequest, name: str, kwargs: dict[str, Any]) -> JobRun:
        return enqueue_job(
            name, kwargs=kwargs, trigger=JobRun.Trigger.ADMIN, triggered_by=actor(request)
        )

    def _report(
        self, request: HttpRequest, runs: list[JobRun], *, what: str
    ) -> HttpResponse | None:
        """One run: land on its page (if the user may see it). Else: the list, links to each."""
        if len(runs) == 1 and request.user.has_perm("jobs.view_jobrun"):
            run = runs[0]
            self.message_user(request, f"Queued {run.job} ({what}) as run #{run.pk}.")
            return HttpResponseRedirect(run_url(run))
        self.message_user(
            request,
            format_html(
                "Queued {} {} run(s): {}",
                len(runs),
                what,
                format_html_join(
                    ", ",
                    '<a href="{}">#{}{}</a>',
                    ((run_url(r), r.pk, _about(r)) for r in runs),
                ),
            ),
        )
        return None

    def _confirmation(
        self,
        request: HttpRequest,
        queryset: QuerySet[Exchange],
        eligible: list[Exchange],
        rows: list[tuple[Exchange, str]],
        *,
        action: str,
        title: str,
        intro: str,
        skipped_note: str,
        submit: str,
        pending: Iterable[JobRun] = (),
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "intro": intro,
            "rows": rows,
            "skipped": queryset.count() - len(eligible),
            "skipped_note": skipped_note,
            "pending": list(pending),
            "selected": [e.pk for e in eligible],
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "submit": submit,
        }
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)


@admin.register(Participant)
class ParticipantAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "email", "exchange", "reminder_enabled", "withdrawn_at")
    list_filter = ("reminder_enabled", "exchange__state")
    search_fields = ("name", "email", "exchange__name")
    raw_id_fields = ("exchange",)


@admin.register(MagicToken)
class MagicTokenAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    """Read-only: tokens are created by the login flow and removed by cleanup_tokens."""

    list_display = ("email", "created_at", "expires_at", "used_at")
    search_fields = ("email",)
    exclude = ("token_hash",)  # never shown, even hashed
    secret_fields = ("token_hash",)  # nor filtered on

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
