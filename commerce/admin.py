"""Admin of the commerce app. State changes need the model's change permission and write the
audit log; actions that change for good ask first. Tokens never show their hash; the webhook
secret appears on no page."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from commerce.models import (
    DELIVERED_STATUSES,
    FINAL_STATUSES,
    AuditLog,
    Cart,
    CartLine,
    Customer,
    ExpiringToken,
    Order,
    OrderLine,
    Product,
    Subscription,
    WebhookEvent,
)
from commerce.services.dates import due_delivery_date, store_today
from commerce.services.lifecycle import CHANGES, change_subscriptions
from commerce.services.orders import SHIPPABLE, awaiting_payment_q, mark_orders_shipped
from commerce.services.webhooks import PROCESS_JOB as WEBHOOK_PROCESS_JOB
from jobs.admin.actions import JobActionsMixin, actor, job_action
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.readonly import ReadOnlyMixin
from jobs.admin.runs import pretty_json
from jobs.arguments import DATE_HORIZON_DAYS

PROCESS_JOB = "commerce.process_due_subscriptions"
#: The furthest next delivery date staff may type: the horizon of the jobs' dates too.
MAX_DAYS_AHEAD = timedelta(days=DATE_HORIZON_DAYS)


@admin.register(Customer)
class CustomerAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("name", "email", "phone")
    ordering = ("name", "pk")  # pages (the list's, autocomplete's) never repeat or skip one
    search_fields = ("name", "email", "phone")


class StockFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "stock"

    def lookups(self, request, model_admin):
        return (("out", "out of stock"), ("in", "in stock"))

    def queryset(self, request, queryset):
        if self.value() == "out":
            return queryset.filter(stock_quantity=0)
        if self.value() == "in":
            return queryset.filter(stock_quantity__gt=0)
        return queryset


@admin.register(Product)
class ProductAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("sku", "name", "price", "stock_quantity")
    search_fields = ("sku", "name")
    list_filter = (StockFilter,)


class SubscriptionForm(forms.ModelForm):
    """Refuses a next delivery date the daily job would skip: one late by a whole period or
    more (0001-01-01 typed by mistake would otherwise read as a hundred thousand missed
    deliveries). The job would move it forward anyway; the form says so at once. Nor a date
    more than a year ahead (2062 for 2026): the subscription would show active and never be
    delivered or reminded; a long break is a pause.

    A next date or frequency typed here is the schedule staff mean: its day of the month
    becomes the anchor monthly deliveries keep (moved to the 15th, it stays on the 15th)."""

    def clean(self) -> dict:
        data = super().clean()
        when, frequency = data.get("next_delivery_date"), data.get("frequency")
        if when is None or not frequency:
            return data
        if {"next_delivery_date", "frequency"} & set(self.changed_data):
            self.instance.anchor_day = when.day
        today = store_today()
        if when > today + MAX_DAYS_AHEAD:
            self.add_error(
                "next_delivery_date",
                f"{when} is more than a year ahead (today is {today}): choose an earlier date,"
                " or pause the subscription.",
            )
            return data
        anchor = self.instance.anchor_day or when.day
        if (
            when < today
            and due_delivery_date(when, frequency=frequency, anchor_day=anchor, today=today) != when
        ):
            self.add_error(
                "next_delivery_date",
                f"{when} is late by one {frequency} period or more (today is {today}): a late"
                " delivery can be at most one period late; choose a later date.",
            )
        return data


@admin.register(Subscription)
class SubscriptionAdmin(JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "customer",
        "product",
        "quantity",
        "frequency",
        "next_delivery_date",
        "status",
        "price_per_delivery",
    )
    list_filter = ("status", "frequency")
    list_select_related = ("customer", "product")
    search_fields = (
        "customer__name",
        "customer__email",
        "product__sku",
        "provider_subscription_id",
    )
    raw_id_fields = ("customer", "product")
    form = SubscriptionForm
    # The status changes through the actions and the provider's events only, each with its
    # rule (resume moves the date, cancel is final) and audit row.
    readonly_fields = ("status", "anchor_day", "created_at", "updated_at")
    actions = ("pause", "resume", "cancel", "process_now")

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        """Cancelled and completed are final: their page is read-only for everyone."""
        if obj is not None and obj.status in FINAL_STATUSES:
            return False
        return super().has_change_permission(request, obj)

    def _change(self, request: HttpRequest, queryset: QuerySet, action: str) -> None:
        ids = change_subscriptions(
            action=action,
            subscription_ids=list(queryset.values_list("pk", flat=True)),
            actor=actor(request),
        )
        skipped = queryset.count() - len(ids)
        note = f"; {skipped} left alone (not in a state that allows it)" if skipped else ""
        self.message_user(request, f"{action.capitalize()}: {len(ids)} subscription(s){note}.")

    @admin.action(description="Pause selected subscriptions", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._change(request, queryset, "pause")

    @admin.action(description="Resume selected subscriptions", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._change(request, queryset, "resume")

    @admin.action(
        description="Cancel selected subscriptions (final; asks first)", permissions=["change"]
    )
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        chosen = self.eligible(
            request,
            queryset.filter(status__in=CHANGES["cancel"].from_statuses).select_related(
                "customer", "product"
            ),
            none="No subscription that can be cancelled selected.",
        )
        if not chosen:
            return None
        if not self.confirmed(request):
            return self.confirm_chosen(
                request,
                queryset,
                chosen,
                lambda s: (
                    reverse("admin:commerce_subscription_change", args=[s.pk]),
                    str(s.customer),
                    f"{s.quantity} x {s.product.name}, {s.frequency}, next {s.next_delivery_date}",
                ),
                action="cancel",
                title="Cancel these subscriptions?",
                intro="No further delivery is made for them; a cancellation cannot be undone.",
                skipped_note="are already cancelled and will be left alone",
                submit="Yes, cancel them",
            )
        self._change(request, queryset, "cancel")
        return None

    @job_action(
        PROCESS_JOB, description="Process now (make the orders of selected due subscriptions)"
    )
    def process_now(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """No confirmation: only due deliveries are made, each once (the order key)."""
        chosen = queryset.filter(status__in=DELIVERED_STATUSES)
        ids = [
            s.pk for s in self.eligible(request, chosen, none="No active subscription selected.")
        ]
        if not ids:
            return None
        run = self.queue_job(request, PROCESS_JOB, {"subscription_ids": ids})
        return self.report_runs(
            request,
            [run],
            detail=f"for {len(ids)} subscription(s); those not due yet are left alone",
        )


class PaymentFilter(admin.SimpleListFilter):
    """Orders still pending COMMERCE_UNPAID_GRACE_DAYS after they were made."""

    title = "payment"
    parameter_name = "payment"

    def lookups(self, request, model_admin):
        return (("awaiting", "awaiting payment (past the grace period)"),)

    def queryset(self, request, queryset):
        if self.value() == "awaiting":
            return queryset.filter(awaiting_payment_q())
        return queryset


class OrderLineInline(ReadOnlyMixin, admin.TabularInline):
    model = OrderLine
    extra = 0
    fields = ("product", "quantity", "unit_price", "line_total")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "customer",
        "status",
        "delivery_date",
        "total",
        "created_at",
        "shipped_at",
    )
    list_filter = ("status", PaymentFilter)
    list_select_related = ("customer",)
    search_fields = ("=id", "customer__name", "customer__email", "provider_payment_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "customer",
        "subscription",
        "delivery_date",
        "subtotal",
        "total",
        "provider_payment_id",
        "created_at",
        "paid_at",
        "shipped_at",
        "status",
    )
    inlines = (OrderLineInline,)
    actions = ("mark_shipped",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come from subscriptions and the storefront

    @admin.action(
        description="Mark shipped (tells the customer; asks first)", permissions=["change"]
    )
    def mark_shipped(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        chosen = self.eligible(
            request,
            queryset.filter(status__in=SHIPPABLE).select_related("customer"),
            none="No pending or paid order selected.",
        )
        if not chosen:
            return None
        if not self.confirmed(request):
            return self.confirm_chosen(
                request,
                queryset,
                chosen,
                lambda o: (
                    reverse("admin:commerce_order_change", args=[o.pk]),
                    f"order #{o.pk}",
                    f"{o.customer}, {o.status}, total {o.total}: email"
                    f"{' and SMS' if o.customer.phone else ''} to the customer",
                ),
                action="mark_shipped",
                title="Mark these orders shipped?",
                intro="Each order becomes shipped now and its customer is told (email, SMS).",
                skipped_note="are shipped or cancelled already and will be left alone",
                submit="Yes, mark shipped",
            )
        result = mark_orders_shipped(order_ids=[o.pk for o in chosen], actor=actor(request))
        self.message_user(
            request,
            f"Marked {result['shipped']} order(s) shipped; {result['notifications_queued']}"
            " notification(s) queued.",
        )
        return None


class CartLineInline(admin.TabularInline):
    model = CartLine
    extra = 0
    raw_id_fields = ("product",)


@admin.register(Cart)
class CartAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("id", "customer", "created_at", "updated_at")
    list_select_related = ("customer",)
    search_fields = ("customer__name", "customer__email")
    date_hierarchy = "updated_at"
    raw_id_fields = ("customer",)
    inlines = (CartLineInline,)


@admin.register(ExpiringToken)
class ExpiringTokenAdmin(ReadOnlyMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    """Tokens are made by the storefront and removed by cleanup; never their hash here."""

    secret_fields = ("token_hash",)
    list_display = ("id", "kind", "customer", "created_at", "expires_at", "used_at")
    list_filter = ("kind",)
    exclude = ("token_hash",)
    raw_id_fields = ("customer",)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("created_at", "actor", "action", "object_ref")
    list_filter = ("action",)
    search_fields = ("=object_ref", "actor")
    date_hierarchy = "created_at"


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyMixin, JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("received_at", "event_type", "event_id", "outcome", "processed_at")
    list_filter = ("outcome", "event_type")
    search_fields = ("=event_id",)
    date_hierarchy = "received_at"
    fields = ("event_id", "event_type", "received_at", "processed_at", "outcome", "detail", "body")
    actions = ("process_again",)

    @admin.display(description="payload")
    def body(self, event: WebhookEvent) -> str:
        return pretty_json(event.payload)

    @job_action(WEBHOOK_PROCESS_JOB, description="Process again (one run per event)")
    def process_again(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """No confirmation: an order already made is found, an email already queued is not
        queued again (keys), so processing twice does nothing twice."""
        ids = list(queryset.order_by("pk").values_list("pk", flat=True))
        if not ids:  # the selected events are gone (or the ids were never ours)
            self.message_user(request, "No webhook event selected.", messages.WARNING)
            return None
        runs = [self.queue_job(request, WEBHOOK_PROCESS_JOB, {"event_id": pk}) for pk in ids]
        return self.report_runs(
            request,
            runs,
            detail="to be processed again",
            label=lambda run: f" (event {run.kwargs['event_id']})",
        )
