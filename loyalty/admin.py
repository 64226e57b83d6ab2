"""Admin of the loyalty app: programs, cards (balance read-only, ledger inline), transactions.

Balances only change through the ledger, so they are read-only here; the card
actions queue the real jobs through jobs.runner.enqueue_job (trigger `admin`, the
user recorded as triggered_by) and need the jobs core's `run_job` permission, not just
staff. "Expire now" voids points for good: it needs the cards' change permission too
and shows a confirmation page first. An action lands on the run it created.
"""

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from jobs.admin import actor
from jobs.admin_lookups import DeclaredLookupsOnly
from jobs.models import JobRun
from jobs.runner import enqueue_job
from loyalty.admin_wallets import WalletSyncStateInline
from loyalty.models import (
    Customer,
    LoyaltyCard,
    LoyaltyProgram,
    LoyaltyTransaction,
    Merchant,
    Store,
)
from loyalty.services.expiration import WARNING_DAYS, expiring_programs

RUN_PERMISSION = "jobs.run_job"
CONFIRM_TEMPLATE = "admin/jobs/action_confirmation.html"  # shared by the apps
EXPIRE_JOB = "loyalty.expire_points"
SYNC_JOB = "loyalty.sync_wallet_passes"
#: Cards listed one by one on the confirmation page; the rest are counted.
CONFIRM_MAX_ROWS = 100


def run_url(run: JobRun) -> str:
    return reverse("admin:jobs_jobrun_change", args=[run.pk])


@admin.register(Merchant)
class MerchantAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Store)
class StoreAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "merchant")
    list_select_related = ("merchant",)


@admin.register(Customer)
class CustomerAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "email", "phone")
    search_fields = ("name", "email", "phone")


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "merchant", "is_active", "points_expiration_days")
    list_filter = ("is_active",)
    list_select_related = ("merchant",)


class LedgerInline(admin.TabularInline):
    model = LoyaltyTransaction
    fk_name = "card"
    extra = 0
    ordering = ("-transaction_at", "-id")
    fields = (
        "transaction_at",
        "transaction_type",
        "points_delta",
        "points_balance_after",
        "stamps_delta",
        "stamps_balance_after",
        "notes",
    )
    readonly_fields = fields
    can_delete = False
    max_num = 0
    show_change_link = True


@admin.register(LoyaltyCard)
class LoyaltyCardAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = (
        "number",
        "merchant",
        "customer",
        "points_balance",
        "last_activity_at",
        "last_expiration_warning_at",
        "is_active",
    )
    list_filter = ("is_active", "merchant")
    list_select_related = ("merchant", "customer")
    search_fields = ("number", "customer__name", "customer__email")
    readonly_fields = (
        "points_balance",
        "stamp_count",
        "total_points_voided",
        "last_activity_at",
        "last_expiration_warning_at",
    )
    raw_id_fields = ("customer",)
    inlines = (LedgerInline, WalletSyncStateInline)
    actions = ("expire_now", "resync_wallet")

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    # An action listing several permissions is offered when the user has *any* of them;
    # this combines them so that both are needed.
    def has_run_and_change_permission(self, request: HttpRequest) -> bool:
        return self.has_run_permission(request) and self.has_change_permission(request)

    @admin.action(
        description="Expire now (points of selected cards that are due; asks first)",
        permissions=["run_and_change"],
    )
    def expire_now(
        self, request: HttpRequest, queryset: QuerySet[LoyaltyCard]
    ) -> HttpResponse | None:
        """Confirm (voided points are gone for good), then queue one expire_points run."""
        cards = list(
            queryset.filter(is_active=True, points_balance__gt=0)
            .select_related("merchant", "customer")
            .order_by("pk")
        )
        if not cards:
            self.message_user(request, "No selected card has points to expire.", messages.WARNING)
            return None
        ids = [card.pk for card in cards]
        if request.POST.get("post") != "yes":
            return self._expire_confirmation(request, queryset, cards)
        run = self._queue(request, EXPIRE_JOB, {"card_ids": ids})
        return self._report(
            request,
            run,
            f"for {len(ids)} card(s); cards not yet past their program's expiration are "
            "left unchanged",
        )

    @admin.action(description="Re-sync wallet passes of selected cards", permissions=["run"])
    def resync_wallet(
        self, request: HttpRequest, queryset: QuerySet[LoyaltyCard]
    ) -> HttpResponse | None:
        """No confirmation: pushing a card's current state again changes nothing here."""
        # values_list, not only(): the changelist queryset select_relateds merchant/customer.
        ids = list(
            queryset.filter(is_active=True)
            .exclude(google_object_id="", apple_serial_number="")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not ids:
            self.message_user(request, "No selected card has a wallet pass.", messages.WARNING)
            return None
        run = self._queue(request, SYNC_JOB, {"card_ids": ids})
        return self._report(request, run, f"for {len(ids)} card(s)")

    # -- helpers ---------------------------------------------------------------------

    def _queue(self, request: HttpRequest, name: str, kwargs: dict[str, Any]) -> JobRun:
        return enqueue_job(
            name, kwargs=kwargs, trigger=JobRun.Trigger.ADMIN, triggered_by=actor(request)
        )

    def _report(self, request: HttpRequest, run: JobRun, detail: str) -> HttpResponse | None:
        """Land on the run's page (if the user may see it), else a message linking it."""
        if request.user.has_perm("jobs.view_jobrun"):
            self.message_user(request, f"Queued {run.job} as run #{run.pk} {detail}.")
            return HttpResponseRedirect(run_url(run))
        self.message_user(
            request,
            format_html(
                'Queued {} as run <a href="{}">#{}</a> {}.', run.job, run_url(run), run.pk, detail
            ),
        )
        return None

    def _expire_confirmation(
        self, request: HttpRequest, queryset: QuerySet[LoyaltyCard], cards: list[LoyaltyCard]
    ) -> TemplateResponse:
        now = timezone.now()
        programs = list(expiring_programs().filter(merchant_id__in={c.merchant_id for c in cards}))
        by_merchant: dict[int, list[LoyaltyProgram]] = defaultdict(list)
        for program in programs:
            by_merchant[program.merchant_id].append(program)
        verdicts = {
            card.pk: _expiration_verdict(card, by_merchant.get(card.merchant_id, []), now=now)
            for card in cards
        }
        summary = []
        for program in programs:
            mine = [c for c in cards if c.merchant_id == program.merchant_id]
            due = [c for c in mine if verdicts[c.pk][0] == "expire"]
            warn = [c for c in mine if verdicts[c.pk][0] == "warn"]
            summary.append(
                f"{program.name} ({program.merchant.name}, points expire after "
                f"{program.points_expiration_days} days of inactivity): {len(mine)} selected "
                f"card(s), {len(due)} past expiration with {sum(c.points_balance for c in due)} "
                f"points to void, {len(warn)} to warn"
            )
        no_program = sum(1 for c in cards if not by_merchant.get(c.merchant_id))
        if no_program:
            summary.append(
                f"{no_program} selected card(s) belong to no active program whose points "
                "expire: left alone"
            )
        due_cards = [c for c in cards if verdicts[c.pk][0] == "expire"]
        rows = [
            (
                reverse("admin:loyalty_loyaltycard_change", args=[c.pk]),
                f"{c.number} ({c.customer.name}, {c.merchant.name})",
                verdicts[c.pk][1],
            )
            for c in cards[:CONFIRM_MAX_ROWS]
        ]
        pending = JobRun.objects.filter(
            job=EXPIRE_JOB, status__in=[JobRun.Status.QUEUED, JobRun.Status.RUNNING]
        ).order_by("pk")
        across = request.POST.get("select_across") == "1"
        context = {
            **self.admin_site.each_context(request),
            "title": "Expire the points of these cards now?",
            "opts": self.model._meta,
            "intro": (
                f"{len(due_cards)} of the {len(cards)} card(s) are past their program's"
                f" expiration: their {sum(c.points_balance for c in due_cards)} points will be"
                " voided (balance set to 0, a points-expired ledger row, the customer"
                " notified); this cannot be undone. Cards within"
                f" {WARNING_DAYS} days of expiration get their warning; the others are left"
                " alone."
            ),
            "summary": summary,
            "rows": rows,
            "more": max(0, len(cards) - CONFIRM_MAX_ROWS),
            "skipped": queryset.count() - len(cards),
            "skipped_note": "have no points or are inactive and will be left alone",
            "pending": list(pending),
            "pending_note": (
                "An expiration run is already queued or running (a second one at the same"
                " time is recorded skipped):"
            ),
            # "Select all" across pages: the page's ticks and the flag, not every id.
            "selected": (
                request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
                if across
                else [c.pk for c in cards]
            ),
            "select_across": across,
            "action": "expire_now",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "submit": "Yes, expire now",
            "changelist_url": reverse("admin:loyalty_loyaltycard_changelist"),
        }
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)


def _expiration_verdict(
    card: LoyaltyCard, programs: list[LoyaltyProgram], *, now: datetime
) -> tuple[str, str]:
    """("expire" | "warn" | "keep", what the run will do to this card, in words)."""
    if not programs:
        return "keep", f"{card.points_balance} points; no expiring program: left alone"
    days = min(p.points_expiration_days or 0 for p in programs)
    try:
        expires_at = card.last_activity_at + timedelta(days=days)
        warn_from = expires_at - timedelta(days=WARNING_DAYS)
    except OverflowError:  # a program stored before the bound: the run skips and flags it
        return "keep", (
            f"{card.points_balance} points; expiration after {days} days is out of range:"
            " left alone (fix the program)"
        )
    when = f"{expires_at:%Y-%m-%d %H:%M} UTC"
    if expires_at < now:
        return "expire", f"{card.points_balance} points will be voided (expired {when})"
    warned = card.last_expiration_warning_at is not None and (
        card.last_expiration_warning_at >= card.last_activity_at
    )
    if warn_from < now and not warned:
        return "warn", f"{card.points_balance} points expire {when}: the customer gets a warning"
    return "keep", f"{card.points_balance} points expire {when}: left alone"


@admin.register(LoyaltyTransaction)
class LoyaltyTransactionAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    """The ledger is append-only: read-only here."""

    list_display = (
        "transaction_at",
        "card",
        "transaction_type",
        "points_delta",
        "points_balance_after",
    )
    list_filter = ("transaction_type",)
    list_select_related = ("card",)
    search_fields = ("card__number",)
    date_hierarchy = "transaction_at"
    raw_id_fields = ("card", "store")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
