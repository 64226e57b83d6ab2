"""Admin of the loyalty app. Balances change only through the ledger, so they are read-only
here; "Expire now" voids points for good, so it asks first, showing what the run will do to
each card (as loyalty.selectors decides it)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from jobs.admin.actions import JobActionsMixin, job_action, pending_runs
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.readonly import ReadOnlyMixin
from loyalty.models import (
    Customer,
    LoyaltyCard,
    LoyaltyProgram,
    LoyaltyTransaction,
    Merchant,
    Store,
    WalletSyncState,
)
from loyalty.selectors import (
    CardOutlook,
    cards_due_for_expiration,
    cards_due_for_warning,
    expiration_outlook,
    expiring_programs,
)

EXPIRE_JOB = "loyalty.expire_points"
SYNC_JOB = "loyalty.sync_wallet_passes"


@admin.register(Merchant)
class MerchantAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "timezone", "created_at")
    search_fields = ("name",)


@admin.register(Store)
class StoreAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "merchant")
    list_select_related = ("merchant",)


@admin.register(Customer)
class CustomerAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "email", "phone")
    ordering = ("name", "pk")  # pages (the list's, autocomplete's) never repeat or skip one
    search_fields = ("name", "email", "phone")


class LoyaltyProgramForm(forms.ModelForm):
    """A change to the expiration is saved only once the operator has seen what the next
    run would do with it: how many cards it warns, and how many it expires."""

    confirm_expiration_change = forms.BooleanField(
        required=False,
        label="Confirm the expiration change",
        help_text="Shown with the number of cards the next nightly run would warn.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # The fields that change which cards the nightly run warns or expires.
        expiration = {"is_active", "points_expiration_days", "expiration_warning_days"}
        changes = self.instance.pk is None or expiration & set(self.changed_data)
        if self.errors or not changes:
            return cleaned
        warn, expire = self._next_run(cleaned)
        if (warn or expire) and not cleaned.get("confirm_expiration_change"):
            self.add_error(
                "confirm_expiration_change",
                f"With this change the next nightly run warns {warn} card(s) and expires the"
                f" points of {expire} (already warned for the date that has come). Tick the"
                " box to save.",
            )
        return cleaned

    def _next_run(self, cleaned: dict[str, Any]) -> tuple[int, int]:
        """(cards warned, cards expired) by the next run under the values typed."""
        merchant = cleaned.get("merchant")
        days = cleaned.get("points_expiration_days") or 0
        if merchant is None or not cleaned.get("is_active") or not days:
            return 0, 0
        candidate = LoyaltyProgram(
            pk=self.instance.pk,
            merchant=merchant,
            points_expiration_days=days,
            expiration_warning_days=cleaned.get("expiration_warning_days") or 1,
        )
        now = timezone.now()
        try:
            return (
                cards_due_for_warning(candidate, now=now).count(),
                cards_due_for_expiration(candidate, now=now).count(),
            )
        except OverflowError:
            return 0, 0


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    form = LoyaltyProgramForm
    list_display = (
        "name",
        "merchant",
        "is_active",
        "points_expiration_days",
        "expiration_warning_days",
    )
    list_filter = ("is_active",)
    list_select_related = ("merchant",)


class LedgerInline(ReadOnlyMixin, admin.TabularInline):
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
    show_change_link = True


class WalletSyncStateInline(ReadOnlyMixin, admin.TabularInline):
    """Which wallet is behind, and its last error: written only by the sync."""

    model = WalletSyncState
    extra = 0
    fields = ("wallet", "synced_version", "attempted_at", "synced_at", "failures", "last_error")
    verbose_name = "wallet sync state"

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        """Whoever may see the card sees what its wallets confirmed (no secret in it)."""
        return request.user.has_perm("loyalty.view_loyaltycard") or request.user.has_perm(
            "loyalty.change_loyaltycard"
        )


@admin.register(LoyaltyCard)
class LoyaltyCardAdmin(JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
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

    @job_action(
        EXPIRE_JOB, description="Expire now (points of selected cards that are due; asks first)"
    )
    def expire_now(
        self, request: HttpRequest, queryset: QuerySet[LoyaltyCard]
    ) -> HttpResponse | None:
        """Confirm (voided points are gone for good), then queue one expire_points run."""
        cards = self.eligible(
            request,
            queryset.filter(is_active=True, points_balance__gt=0).select_related(
                "merchant", "customer"
            ),
            none="No selected card has points to expire.",
        )
        return self.ask_then_queue(
            request,
            cards,
            page=lambda rows: self._expire_confirmation(request, queryset, rows),
            queue=lambda rows: [
                self.queue_job(request, EXPIRE_JOB, {"card_ids": [card.pk for card in rows]})
            ],
            detail=f"for {len(cards)} card(s); cards not yet past their program's expiration"
            " are left unchanged",
        )

    @job_action(SYNC_JOB, description="Re-sync wallet passes of selected cards")
    def resync_wallet(
        self, request: HttpRequest, queryset: QuerySet[LoyaltyCard]
    ) -> HttpResponse | None:
        """No confirmation: pushing a card's current state again changes nothing here."""
        cards = self.eligible(
            request,
            queryset.filter(is_active=True).exclude(google_object_id="", apple_serial_number=""),
            none="No selected card has a wallet pass.",
        )
        if not cards:
            return None
        run = self.queue_job(request, SYNC_JOB, {"card_ids": [card.pk for card in cards]})
        return self.report_runs(request, [run], detail=f"for {len(cards)} card(s)")

    def _expire_confirmation(
        self, request: HttpRequest, queryset: QuerySet[LoyaltyCard], cards: list[LoyaltyCard]
    ) -> TemplateResponse:
        """Per program and per card what a run now would do, as the service decides it."""
        outlook = expiration_outlook(cards, now=timezone.now())
        due = [c for c in cards if outlook[c.pk].verdict == "expire"]
        summary = []
        for program in expiring_programs().filter(merchant_id__in={c.merchant_id for c in cards}):
            mine = [c for c in cards if c.merchant_id == program.merchant_id]
            expire = [c for c in mine if outlook[c.pk].verdict == "expire"]
            warn = [c for c in mine if outlook[c.pk].verdict == "warn"]
            summary.append(
                f"{program.name} ({program.merchant.name}, points expire after "
                f"{program.points_expiration_days} days of inactivity): {len(mine)} selected "
                f"card(s), {len(expire)} past expiration with "
                f"{sum(c.points_balance for c in expire)} points to void, {len(warn)} to warn"
            )
        no_program = sum(
            1
            for c in cards
            if outlook[c.pk].expires_on is None and outlook[c.pk].out_of_range_days is None
        )
        if no_program:
            summary.append(
                f"{no_program} selected card(s) belong to no active program whose points "
                "expire: left alone"
            )
        return self.confirm_chosen(
            request,
            queryset,
            cards,
            lambda c: (
                reverse("admin:loyalty_loyaltycard_change", args=[c.pk]),
                f"{c.number} ({c.customer.name}, {c.merchant.name})",
                _in_words(c, outlook[c.pk]),
            ),
            action="expire_now",
            title="Expire the points of these cards now?",
            intro=(
                f"{len(due)} of the {len(cards)} card(s) are past their program's"
                f" expiration: their {sum(c.points_balance for c in due)} points will be"
                " voided (balance set to 0, a points-expired ledger row, the customer"
                " notified); this cannot be undone. Cards within their program's warning"
                " lead of expiration, or past it without a warning, get their warning"
                " first; the others are left alone."
            ),
            summary=summary,
            skipped_note="have no points or are inactive and will be left alone",
            pending=pending_runs(EXPIRE_JOB),
            pending_note=(
                "An expiration run is already queued or running (a second one at the same"
                " time is recorded skipped):"
            ),
            submit="Yes, expire now",
        )


def _in_words(card: LoyaltyCard, outlook: CardOutlook) -> str:
    """What the run will do to this card, for the confirmation page."""
    if outlook.out_of_range_days is not None:  # the run skips and flags the program
        return (
            f"{card.points_balance} points; expiration after {outlook.out_of_range_days} days"
            " is out of range: left alone (fix the program)"
        )
    if outlook.expires_on is None:
        return f"{card.points_balance} points; no expiring program: left alone"
    when = f"on {outlook.expires_on:%Y-%m-%d} ({card.merchant.timezone})"
    if outlook.verdict == "expire":
        return f"{card.points_balance} points will be voided (warned, due {when})"
    if outlook.verdict == "warn":
        return f"{card.points_balance} points expire {when}: the customer gets a warning"
    return f"{card.points_balance} points expire {when}: left alone"


@admin.register(LoyaltyTransaction)
class LoyaltyTransactionAdmin(ReadOnlyMixin, DeclaredLookupsOnly, admin.ModelAdmin):
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
