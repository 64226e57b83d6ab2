"""Admin of the loyalty app: programs, cards (balance read-only, ledger inline), transactions.

Balances only change through the ledger, so they are read-only here; the card
actions queue the real jobs (recorded in run history with the actor) and need the
jobs core's `run_job` permission, not just staff.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.models import JobRun
from jobs.runner import enqueue_job
from loyalty.models import (
    Customer,
    LoyaltyCard,
    LoyaltyProgram,
    LoyaltyTransaction,
    Merchant,
    Store,
)

RUN_PERMISSION = "jobs.run_job"


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("name", "merchant")
    list_select_related = ("merchant",)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "phone")
    search_fields = ("name", "email", "phone")


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(admin.ModelAdmin):
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
class LoyaltyCardAdmin(admin.ModelAdmin):
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
    inlines = (LedgerInline,)
    actions = ("expire_now", "resync_wallet")

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    @admin.action(
        description="Expire now (points of selected cards that are due)", permissions=["run"]
    )
    def expire_now(self, request: HttpRequest, queryset: QuerySet[LoyaltyCard]) -> None:
        ids = list(
            queryset.filter(is_active=True, points_balance__gt=0).values_list("pk", flat=True)
        )
        if not ids:
            self.message_user(request, "No selected card has points to expire.", messages.WARNING)
            return
        run = enqueue_job(
            "loyalty.expire_points",
            kwargs={"card_ids": ids},
            trigger=JobRun.Trigger.ADMIN,
            triggered_by=request.user.get_username(),
        )
        self.message_user(
            request,
            f"Queued loyalty.expire_points run #{run.pk} for {len(ids)} card(s); cards not "
            "yet past their program's expiration are left unchanged.",
        )

    @admin.action(description="Re-sync wallet passes of selected cards", permissions=["run"])
    def resync_wallet(self, request: HttpRequest, queryset: QuerySet[LoyaltyCard]) -> None:
        # values_list, not only(): the changelist queryset select_relateds merchant/customer.
        ids = list(
            queryset.filter(is_active=True)
            .exclude(google_object_id="", apple_serial_number="")
            .values_list("pk", flat=True)
        )
        if not ids:
            self.message_user(request, "No selected card has a wallet pass.", messages.WARNING)
            return
        run = enqueue_job(
            "loyalty.sync_wallet_passes",
            kwargs={"card_ids": ids},
            trigger=JobRun.Trigger.ADMIN,
            triggered_by=request.user.get_username(),
        )
        self.message_user(request, f"Queued wallet re-sync run #{run.pk} for {len(ids)} card(s).")


@admin.register(LoyaltyTransaction)
class LoyaltyTransactionAdmin(admin.ModelAdmin):
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
