"""Admin of the exchanges app. An exchange's actions queue a job, so they show in history
like a scheduled run; those that change or delete data for good ask first."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from exchanges.models import (
    Exchange,
    Exclusion,
    MagicToken,
    Match,
    Participant,
    Reminder,
    counts_by_exchange,
    validate_exchange_date,
    validate_reminder_days,
    validate_timezone_name,
)
from exchanges.services.matching import MATCHABLE_STATES
from exchanges.services.reminder_planning import plan_reminders
from exchanges.services.rescheduling import apply_date_change
from exchanges.services.withdrawal import withdraw_participant
from jobs.admin.actions import JobActionsMixin, job_action, pending_runs
from jobs.admin.form_fields import StrictJSONField
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.readonly import ReadOnlyMixin
from jobs.models import JobRun

MATCH_JOB = "exchanges.match_exchange"
REMINDERS_JOB = "exchanges.send_due_reminders"
COMPLETE_JOB = "exchanges.auto_complete"
PURGE_JOB = "exchanges.purge_completed"


#: Per action: the states of the exchanges it applies to, and the warning when none is selected.
ELIGIBLE_STATES = {
    "match": (MATCHABLE_STATES, "Only draft or registration_open exchanges can be matched."),
    "rematch": ((Exchange.State.MATCHED,), "Only matched exchanges can be re-matched."),
    "send_reminders_now": ((Exchange.State.MATCHED,), "No matched exchange selected."),
    "complete": ((Exchange.State.MATCHED,), "No matched exchange selected."),
    "purge_now": ((Exchange.State.COMPLETED,), "Only completed exchanges can be purged."),
}


def _about(run: JobRun) -> str:
    """What follows a run's link in the message: its exchange (a run of several: nothing)."""
    exchange_id = run.kwargs.get("exchange_id")
    return f" (exchange {exchange_id})" if exchange_id is not None else ""


class ReminderInline(ReadOnlyMixin, admin.TabularInline):
    """Planned from the exchange's reminder_days: edit those instead."""

    model = Reminder
    fields = ("days_before", "due_at", "local_due", "status", "sent_at", "recipients")
    readonly_fields = fields
    extra = 0

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
        if "exchange_at" in self.fields:  # the admin types every date and time in UTC
            self.fields["exchange_at"].help_text = (
                "In UTC, not in the exchange's time zone: 18:00 in Berlin in winter is 17:00."
                " The local date and time show below once saved."
            )


@admin.register(Exchange)
class ExchangeAdmin(JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    form = ExchangeForm
    formfield_overrides = {models.JSONField: {"form_class": StrictJSONField}}
    list_display = ("name", "state", "local_date", "timezone", "organizer_email", "completed_at")
    list_filter = ("state", "timezone")
    search_fields = ("name", "organizer_email")
    readonly_fields = (
        "state",
        "completed_at",
        "purge_warning_sent_at",
        "purge_after",
        "local_date",
    )
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
        "purge_after",
    )
    inlines = [ReminderInline, ExclusionInline]
    actions = ["match", "rematch", "send_reminders_now", "complete", "purge_now"]

    @admin.display(description="exchange date (local)", ordering="exchange_at")
    def local_date(self, exchange: Exchange) -> str:
        if exchange.exchange_at is None:
            return "-"
        return exchange.local_exchange_at.strftime("%Y-%m-%d %H:%M %Z")

    def save_model(self, request: HttpRequest, obj: Exchange, form, change: bool) -> None:
        """A moved date re-opens a completed exchange whose new date is ahead (or withdraws
        a purge warning now too early); editing the date or the intervals of a matched
        exchange re-plans its reminders. The operator is told which."""
        super().save_model(request, obj, form, change)
        if not change:
            return
        changed = set(form.changed_data)
        if {"exchange_at", "timezone"} & changed:
            result = apply_date_change(exchange_id=obj.pk)
            if result["outcome"] == "reopened":
                self.message_user(
                    request,
                    "The new date is ahead: the exchange is matched again (its completion"
                    " and purge warning are withdrawn) and its reminders are planned.",
                    messages.WARNING,
                )
            elif result["outcome"] == "purge warning withdrawn":
                self.message_user(
                    request,
                    "The purge warning promised a day too early for the new date or zone: a"
                    " new warning will be sent before the purge.",
                    messages.WARNING,
                )
            if result["reminders"] is not None:
                self.message_user(request, f"Reminders re-planned: {result['reminders']}")
        elif obj.state == Exchange.State.MATCHED and "reminder_days" in changed:
            result = plan_reminders(exchange_id=obj.pk)
            self.message_user(request, f"Reminders re-planned: {result}")

    # -- actions ---------------------------------------------------------------------

    @job_action(MATCH_JOB, description="Match (draw names; asks first)")
    def match(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> HttpResponse | None:
        """Confirm what will be drawn, then queue one exchanges.match_exchange run each."""
        return self._ask_then_queue(request, queryset, "match", MATCH_JOB)

    @job_action(MATCH_JOB, description="Re-match (clear the draw and draw again; asks first)")
    def rematch(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> HttpResponse | None:
        """Confirm (every giver may get a new receiver), then queue one re-draw each."""
        return self._ask_then_queue(
            request, queryset, "rematch", MATCH_JOB, per_exchange={"rematch": True}
        )

    @job_action(REMINDERS_JOB, description="Send due reminders now")
    def send_reminders_now(
        self, request: HttpRequest, queryset: QuerySet[Exchange]
    ) -> HttpResponse | None:
        """No confirmation: only due reminders go, and each at most once (dedup keys)."""
        eligible = self._eligible(request, queryset, "send_reminders_now")
        runs = [self.queue_job(request, REMINDERS_JOB, {"exchange_id": e.pk}) for e in eligible]
        if not runs:
            return None
        return self.report_runs(request, runs, detail=f"for {len(runs)} exchange(s)", label=_about)

    @job_action(COMPLETE_JOB, description="Complete (asks first)")
    def complete(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> HttpResponse | None:
        """Confirm (completing is final and skips reminders), then queue one run for all."""
        return self._ask_then_queue(
            request, queryset, "complete", COMPLETE_JOB, one_run={"include_future": True}
        )

    @job_action(PURGE_JOB, description="Purge now (asks first)")
    def purge_now(self, request: HttpRequest, queryset: QuerySet[Exchange]) -> HttpResponse | None:
        """Confirm (the rows are deleted for good), then queue one run for all."""
        return self._ask_then_queue(request, queryset, "purge_now", PURGE_JOB, one_run={})

    # -- confirmation pages: per eligible exchange what happens to it, and the page's texts

    def _match_page(self, eligible: list[Exchange]) -> tuple[dict[int, str], dict[str, Any]]:
        ids = [e.pk for e in eligible]
        active = counts_by_exchange(Participant, ids, withdrawn_at__isnull=True)
        exclusions = counts_by_exchange(Exclusion, ids)
        details = {}
        for e in eligible:
            details[e.pk] = (
                f"{active.get(e.pk, 0)} active participant(s),"
                f" {exclusions.get(e.pk, 0)} exclusion(s)"
            )
            if active.get(e.pk, 0) < 2:
                details[e.pk] += " - fewer than 2 active participants: this draw will fail"
        return details, dict(
            title="Match these exchanges?",
            intro=(
                "Names are drawn among the active (not withdrawn) participants, honouring"
                " the exclusions; each giver gets an email with their receiver and the"
                " reminders are planned. A draw cannot be undone."
            ),
            skipped_note="are not draft or registration_open and will be left alone",
            submit="Yes, draw names",
            pending=pending_runs(MATCH_JOB, kwargs__exchange_id__in=ids),
            pending_note=(
                "Already queued or running for these exchanges (a second draw of the"
                " same exchange is skipped or fails):"
            ),
        )

    def _rematch_page(self, eligible: list[Exchange]) -> tuple[dict[int, str], dict[str, Any]]:
        ids = [e.pk for e in eligible]
        active = counts_by_exchange(Participant, ids, withdrawn_at__isnull=True)
        drawn = counts_by_exchange(Match, ids)
        details = {
            e.pk: f"{drawn.get(e.pk, 0)} match(es) now, {active.get(e.pk, 0)} active"
            " participant(s) to draw"
            for e in eligible
        }
        return details, dict(
            title="Draw these exchanges again?",
            intro=(
                "The current draw is cleared and names are drawn again among the active"
                " participants (late joiners included, withdrawn people left out); each"
                " giver whose receiver changes gets an email. This cannot be undone; if no"
                " draw is possible the old one stays."
            ),
            skipped_note="are not matched and will be left alone",
            submit="Yes, draw again",
        )

    def _complete_page(self, eligible: list[Exchange]) -> tuple[dict[int, str], dict[str, Any]]:
        scheduled = counts_by_exchange(
            Reminder, [e.pk for e in eligible], status=Reminder.Status.SCHEDULED
        )
        details = {
            e.pk: f"exchange date {self.local_date(e)}, "
            f"{scheduled.get(e.pk, 0)} scheduled reminder(s) will be skipped"
            for e in eligible
        }
        return details, dict(
            title="Complete these exchanges?",
            intro=(
                "These matched exchanges become completed now, even if their date is still"
                " ahead: their scheduled reminders are skipped and they are purged 30 days"
                " from now. Completing cannot be undone."
            ),
            skipped_note="are not matched and will be left alone",
            submit="Yes, complete now",
        )

    def _purge_now_page(self, eligible: list[Exchange]) -> tuple[dict[int, str], dict[str, Any]]:
        people = counts_by_exchange(Participant, [e.pk for e in eligible])
        details = {
            e.pk: f"completed {e.completed_at:%Y-%m-%d %H:%M} UTC,"
            f" {people.get(e.pk, 0)} participants"
            for e in eligible
        }
        return details, dict(
            title="Purge exchanges now?",
            intro=(
                "These completed exchanges and all their participants, draws, exclusions"
                " and reminders will be deleted for good. Organizers get no further warning."
            ),
            skipped_note="are not completed and will be left alone",
            submit="Yes, purge now",
        )

    def _eligible(
        self, request: HttpRequest, queryset: QuerySet[Exchange], action: str
    ) -> list[Exchange]:
        states, none = ELIGIBLE_STATES[action]
        return self.eligible(request, queryset.filter(state__in=states), none=none)

    def _ask_then_queue(
        self,
        request: HttpRequest,
        queryset: QuerySet[Exchange],
        action: str,
        job: str,
        *,
        one_run: dict[str, Any] | None = None,
        per_exchange: dict[str, Any] | None = None,
    ) -> HttpResponse | None:
        """`action`'s eligible exchanges: its confirmation page (`_<action>_page`), one row
        per exchange, then (answered yes) `job`.

        One run per exchange (`{"exchange_id": pk, **per_exchange}`), or with `one_run` one
        run for all (`{"exchange_ids": [...], **one_run}`).
        """
        eligible = self._eligible(request, queryset, action)

        def page(rows: list[Exchange]) -> TemplateResponse:
            details, texts = getattr(self, f"_{action}_page")(rows)
            return self.confirm_chosen(
                request,
                queryset,
                rows,
                lambda e: (
                    reverse("admin:exchanges_exchange_change", args=[e.pk]),
                    f"#{e.pk} {e.name} ({e.state})",
                    details[e.pk],
                ),
                action=action,
                **texts,
            )

        def queue(rows: list[Exchange]) -> list[JobRun]:
            if one_run is None:
                extra = per_exchange or {}
                return [self.queue_job(request, job, {"exchange_id": e.pk, **extra}) for e in rows]
            ids = [e.pk for e in rows]
            return [self.queue_job(request, job, {"exchange_ids": ids, **one_run})]

        return self.ask_then_queue(
            request,
            eligible,
            page=page,
            queue=queue,
            detail=f"for {len(eligible)} exchange(s)",
            label=_about,
        )


@admin.register(Participant)
class ParticipantAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    """A withdrawal goes through the action (it repairs the draw), never a typed date."""

    list_display = ("name", "email", "exchange", "reminder_enabled", "withdrawn_at")
    list_filter = ("reminder_enabled", "exchange__state")
    search_fields = ("name", "email", "exchange__name")
    raw_id_fields = ("exchange",)
    readonly_fields = ("withdrawn_at",)
    actions = ["withdraw"]

    def delete_model(self, request: HttpRequest, obj: Participant) -> None:
        self.delete_queryset(request, Participant.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Participant]) -> None:
        """Deleted people withdraw first: their matches would go by cascade, leaving their
        giver with nobody to give to and their receiver with no gift, and nobody told."""
        with transaction.atomic():
            for pk in queryset.filter(withdrawn_at__isnull=True).values_list("pk", flat=True):
                withdraw_participant(participant_id=pk)
            super().delete_queryset(request, queryset)

    @admin.action(permissions=["change"], description="Withdraw (repairs the draw)")
    def withdraw(self, request: HttpRequest, queryset: QuerySet[Participant]) -> None:
        """Each selected participant withdraws; their giver takes over their receiver, or
        the organizer is told that a re-match is needed."""
        outcomes: dict[str, int] = {}
        for participant in queryset.filter(withdrawn_at__isnull=True):
            outcome = withdraw_participant(participant_id=participant.pk)["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            self.log_change(request, participant, f"Withdrawn ({outcome}).")
        if not outcomes:
            self.message_user(request, "No selected participant is still active.", messages.WARNING)
            return
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        level = messages.WARNING if "rematch needed" in outcomes else messages.SUCCESS
        self.message_user(request, f"Withdrawn: {summary}.", level)


@admin.register(MagicToken)
class MagicTokenAdmin(ReadOnlyMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    """Read-only: tokens are created by the login flow and removed by cleanup_tokens."""

    list_display = ("email", "created_at", "expires_at", "used_at")
    search_fields = ("email",)
    exclude = ("token_hash",)  # never shown, even hashed
    secret_fields = ("token_hash",)  # nor filtered on
