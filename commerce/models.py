"""Models of the storefront: products, subscriptions that become orders, carts,
expiring tokens, the audit log and the payment provider's webhook events.

Two constraints carry the jobs' guarantees: stock is never negative, and a subscription
has at most one order per delivery date, the key every path meets at.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.models import Contact


class Customer(Contact):
    """The storefront's own customer (loyalty has its own too)."""


class Product(models.Model):
    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    #: Units on hand; orders take from it in the transaction that creates them.
    stock_quantity = models.IntegerField(default=0, validators=[MinValueValidator(0)])

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(stock_quantity__gte=0), name="commerce_product_stock_nonnegative"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="commerce_product_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Subscription(models.Model):
    class Frequency(models.TextChoices):
        WEEKLY = "weekly", "weekly"
        BIWEEKLY = "biweekly", "every two weeks"
        #: Same day of the month as `anchor_day`, or the month's last day when shorter.
        MONTHLY = "monthly", "monthly"

    class Status(models.TextChoices):
        ACTIVE = "active", "active"  # delivered on next_delivery_date
        #: The provider's charge failed and it is retrying (Razorpay `pending`): still
        #: delivered, the customer told once.
        PAST_DUE = "past_due", "past due"
        PAUSED = "paused", "paused"  # kept, not delivered until resumed
        #: The provider gave up charging (Razorpay `halted`): not delivered until it is
        #: active again at the provider.
        HALTED = "halted", "halted"
        CANCELLED = "cancelled", "cancelled"  # final
        #: The provider billed every cycle (Razorpay `completed`): final.
        COMPLETED = "completed", "completed"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="subscriptions")
    quantity = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    frequency = models.CharField(max_length=16, choices=Frequency.choices)
    next_delivery_date = models.DateField()
    #: Day of the month monthly deliveries keep (Jan 31 -> Feb 28 -> Mar 31); set from the
    #: first delivery date when empty, and from a date staff type in the admin.
    anchor_day = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(31)]
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    price_per_delivery = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(0)]
    )
    #: The payment provider's subscription id (Razorpay `sub_...`), empty for none.
    provider_subscription_id = models.CharField(max_length=64, blank=True, default="")
    #: When the provider created the newest of its events about this subscription that we
    #: acted on: the provider does not keep its events in order (and retries one for 24
    #: hours), so an older one arriving later does not change the state back.
    provider_event_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The daily job walks delivered subscriptions in (next_delivery_date, id) order.
            models.Index(
                fields=["next_delivery_date", "id"],
                condition=Q(status__in=["active", "past_due"]),
                name="commerce_sub_due_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="commerce_sub_quantity_gte_1"
            ),
            models.CheckConstraint(
                condition=Q(anchor_day__isnull=True) | Q(anchor_day__range=(1, 31)),
                name="commerce_sub_anchor_day_range",
            ),
            models.UniqueConstraint(
                fields=["provider_subscription_id"],
                condition=~Q(provider_subscription_id=""),
                name="commerce_sub_provider_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"subscription {self.pk}: {self.quantity} x {self.product_id} {self.frequency}"

    def save(self, *args, **kwargs) -> None:
        if self.anchor_day is None and self.next_delivery_date is not None:
            self.anchor_day = self.next_delivery_date.day
        super().save(*args, **kwargs)


DELIVERED_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)
FINAL_STATUSES = (Subscription.Status.CANCELLED, Subscription.Status.COMPLETED)


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"  # made, not paid yet
        PAID = "paid", "paid"  # the provider charged it
        SHIPPED = "shipped", "shipped"  # marked shipped in the admin; customer told
        CANCELLED = "cancelled", "cancelled"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    #: The subscription and delivery date this order was made for; empty for one-off orders.
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    delivery_date = models.DateField(null=True, blank=True)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    provider_payment_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One order per subscription per delivery date: what makes every path idempotent.
            models.UniqueConstraint(
                fields=["subscription", "delivery_date"], name="commerce_order_one_per_delivery"
            ),
            models.CheckConstraint(
                condition=Q(subscription__isnull=True) | Q(delivery_date__isnull=False),
                name="commerce_order_subscription_has_date",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="commerce_order_status_idx"),
            # payment.failed asks whether the payment already paid an order.
            models.Index(
                fields=["provider_payment_id"],
                condition=~Q(provider_payment_id=""),
                name="commerce_order_payment_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.pk}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id}"


class Cart(models.Model):
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="carts"
    )
    created_at = models.DateTimeField(default=timezone.now)
    #: Any change to the cart or its lines moves it (database triggers, bulk writes
    #: included: migration 0002); cleanup counts retention from here.
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"cart {self.pk}"


class CartLine(models.Model):
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id}"


class AuditLog(models.Model):
    """Who changed what: order and subscription state changes. Append-only."""

    #: A username, `cli:<login>`, or the job that made the change.
    actor = models.CharField(max_length=150)
    #: e.g. "order.created", "order.shipped", "subscription.paused".
    action = models.CharField(max_length=64)
    #: "order:42", "subscription:7".
    object_ref = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    details = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_ref}"


class ExpiringToken(models.Model):
    """Password reset, email verification, one-time codes. Only the token's hash is stored."""

    class Kind(models.TextChoices):
        PASSWORD_RESET = "password_reset", "password reset"
        EMAIL_VERIFICATION = "email_verification", "email verification"
        ONE_TIME_CODE = "one_time_code", "one-time code"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="tokens"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.kind} token {self.pk}"


class WebhookEvent(models.Model):
    """A verified provider event, stored before anything is done with it."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "pending"  # stored, not processed yet
        PROCESSED = "processed", "processed"  # acted on
        IGNORED = "ignored", "ignored"  # a type we store and show only
        FAILED = "failed", "failed"  # processing failed; see detail, process again

    provider = models.CharField(max_length=32, default="razorpay")
    #: The provider's event id (`x-razorpay-event-id`): a replay finds it and does nothing.
    event_id = models.CharField(max_length=128, unique=True)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    detail = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
