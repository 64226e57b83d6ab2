"""Models of the loyalty app: merchants, programs, cards and the points ledger.

The ledger invariant: a card's `points_balance` always equals the sum of its
transactions' `points_delta`. Every change to a balance writes a transaction in
the same statement or transaction (see loyalty.sql for the expiration chunk).
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Func, Q, Value
from django.db.models.functions import Now
from django.utils import timezone

from jobs.models import Contact
from jobs.validators import validate_timezone_name

#: Longest inactivity a program may expire points after (10 years): beyond it the date
#: arithmetic of the nightly run and the admin overflow, and no program means it.
MAX_EXPIRATION_DAYS = 3650


class Merchant(models.Model):
    name = models.CharField(max_length=200)
    #: IANA zone of the merchant's customers: expiration dates are their calendar days.
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone_name],
        help_text="IANA name (Europe/Paris): the dates customers are told are in this zone.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Store(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="stores")
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.name


class LoyaltyProgram(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="programs")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    #: Days of card inactivity after which points expire; empty or 0: points never expire.
    points_expiration_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_EXPIRATION_DAYS)],
        help_text=f"0 to {MAX_EXPIRATION_DAYS}; empty or 0: points never expire.",
    )
    #: Days before expiration the customer is warned; the run never uses more than half
    #: the expiration period, so a customer active within the lead is never warned.
    expiration_warning_days = models.PositiveSmallIntegerField(
        default=14,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_EXPIRATION_DAYS // 2)],
        help_text="Days of notice before points expire: at most half the expiration period.",
    )
    #: Google Wallet loyaltyClass id (issuerId.suffix): a deleted card object is re-created in it.
    google_wallet_class_id = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(
                fields=["merchant"],
                condition=Q(is_active=True, points_expiration_days__gt=0),
                name="loyalty_program_expiring_idx",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(points_expiration_days__lte=MAX_EXPIRATION_DAYS),
                name="loyalty_program_expiration_days_max",
            ),
            models.CheckConstraint(
                condition=Q(expiration_warning_days__gte=1),
                name="loyalty_program_warning_days_min",
            ),
            # Two active programs would each warn and expire the same cards by their own
            # dates: the customer could not tell which one a warning meant.
            models.UniqueConstraint(
                fields=["merchant"],
                condition=Q(is_active=True),
                name="loyalty_program_one_active_per_merchant",
                violation_error_message=(
                    "This merchant already has an active program: deactivate it first."
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        days = self.points_expiration_days or 0
        if days == 1:
            raise ValidationError(
                {"points_expiration_days": "At least 2 days: the customer needs a day of notice."}
            )
        if days and self.expiration_warning_days and self.expiration_warning_days * 2 > days:
            raise ValidationError(
                {
                    "expiration_warning_days": (
                        f"At most {days // 2} days: half of the {days}-day expiration period."
                    )
                }
            )

    @property
    def warning_lead_days(self) -> int:
        """The notice the run gives: the setting, cut to half the period (at least 1 day)."""
        days = self.points_expiration_days or 0
        return max(1, min(self.expiration_warning_days, days // 2))


class Customer(Contact):
    """A card holder; messages go to the email, else the phone."""


class LoyaltyCard(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="cards")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="cards")
    number = models.CharField(max_length=32, unique=True)
    points_balance = models.IntegerField(default=0)
    stamp_count = models.IntegerField(default=0)
    total_points_voided = models.BigIntegerField(default=0)
    #: Last earn/redeem; expiration counts inactivity from here (a new card: its issue).
    last_activity_at = models.DateTimeField(default=timezone.now)
    #: When the last expiration warning was queued.
    last_expiration_warning_at = models.DateTimeField(null=True, blank=True)
    #: The inactivity cycle (its `last_activity_at`) that warning was about: activity
    #: recorded later, even dated earlier (an offline sale), starts a cycle not yet warned.
    expiration_warning_cycle_at = models.DateTimeField(null=True, blank=True)
    #: The date (merchant's zone) that warning promised: points never expire before it.
    points_expire_on = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    google_object_id = models.CharField(max_length=200, blank=True, default="")
    apple_serial_number = models.CharField(max_length=200, blank=True, default="")
    #: Drawn from loyalty_balance_version_seq on insert and, by the trigger of migration
    #: 0003, on every change of points_balance or stamp_count, whatever code or SQL makes it.
    balance_version = models.BigIntegerField(
        db_default=Func(Value("loyalty_balance_version_seq"), function="nextval"),
        editable=False,
    )
    #: When what the card's passes show last changed (points, stamps, number, active), set
    #: by the same trigger (migration 0005), a whole second later than the previous change:
    #: the pass download's Last-Modified, whose HTTP date has whole seconds.
    pass_updated_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        indexes = [
            # Both expiration phases walk one merchant's active cards with points in
            # (last_activity_at, id) order: each chunk is one range read, no sort (loyalty.sql).
            models.Index(
                fields=["merchant", "last_activity_at", "id"],
                condition=Q(is_active=True, points_balance__gt=0),
                name="loyalty_card_expirable_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_points_voided__gte=0), name="loyalty_card_voided_nonnegative"
            ),
            # A pass names its card by these ids (a device's PassKit call by serial number,
            # the sync's PATCH by object id): shared, one customer would see another's card.
            models.UniqueConstraint(
                fields=["apple_serial_number"],
                condition=~Q(apple_serial_number=""),
                name="loyalty_card_apple_serial_unique",
                violation_error_message="Another card has this Apple serial number.",
            ),
            models.UniqueConstraint(
                fields=["google_object_id"],
                condition=~Q(google_object_id=""),
                name="loyalty_card_google_object_unique",
                violation_error_message="Another card has this Google object id.",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class LoyaltyTransaction(models.Model):
    class Type(models.TextChoices):
        POINTS_EARNED = "points_earned", "Points earned"
        POINTS_REDEEMED = "points_redeemed", "Points redeemed"
        #: Written by loyalty.expire_points; points_delta is minus the whole balance.
        POINTS_EXPIRED = "points_expired", "Points expired"
        POINTS_ADJUSTED = "points_adjusted", "Points adjusted"
        STAMP_EARNED = "stamp_earned", "Stamp earned"

    card = models.ForeignKey(LoyaltyCard, on_delete=models.CASCADE, related_name="transactions")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+")
    store = models.ForeignKey(Store, on_delete=models.SET_NULL, null=True, blank=True)
    transaction_type = models.CharField(max_length=32, choices=Type.choices)
    points_delta = models.IntegerField(default=0)
    points_balance_after = models.IntegerField(default=0)
    stamps_delta = models.IntegerField(default=0)
    stamps_balance_after = models.IntegerField(default=0)
    notes = models.CharField(max_length=500, blank=True)
    transaction_at = models.DateTimeField()

    class Meta:
        indexes = [
            # Wallet sync: "cards with a transaction in the last hour".
            models.Index(fields=["transaction_at", "card"], name="loyalty_txn_recent_idx"),
            # Admin ledger inline and per-card history.
            models.Index(fields=["card", "transaction_at"], name="loyalty_txn_card_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.transaction_type} {self.points_delta:+d} on {self.card_id}"


class WalletSyncState(models.Model):
    """What one wallet of one card last confirmed: the sync catches up every card behind."""

    class Wallet(models.TextChoices):
        GOOGLE = "google", "Google Wallet"
        APPLE = "apple", "Apple Wallet"

    card = models.ForeignKey(LoyaltyCard, on_delete=models.CASCADE, related_name="wallet_states")
    wallet = models.CharField(max_length=16, choices=Wallet.choices)
    #: The card's balance_version this wallet last accepted (0: never).
    synced_version = models.BigIntegerField(default=0)
    #: Apple: the passesUpdatedSince tag of the last update announced to devices.
    published_tag = models.BigIntegerField(default=0)
    attempted_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    #: The card's balance_version this wallet refused for good (a 4xx other than our
    #: credentials): quarantined, not tried again until the card changes (0: none).
    quarantined_version = models.BigIntegerField(default=0, db_default=0)
    #: Failed attempts (runs) since the last success, and the last error.
    failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["card", "wallet"], name="loyalty_wallet_state_unique"),
        ]
        permissions = [
            # /wallet-status/?fresh=1 calls Google and Apple: staff need this, and it is
            # rate-limited still (loyalty.services.wallet_status).
            ("probe_wallets", "Can ask the wallets now (wallet status ?fresh=1)"),
        ]

    def __str__(self) -> str:
        return f"{self.wallet} of card {self.card_id} at version {self.synced_version}"


class AppleDeviceRegistration(models.Model):
    """A device that asked (PassKit web service) to be told when a card's pass changes."""

    device_library_identifier = models.CharField(max_length=128)
    #: APNs device token (hex) of the device; a secret of sorts: not shown in the admin.
    push_token = models.CharField(max_length=200)
    card = models.ForeignKey(
        LoyaltyCard, on_delete=models.CASCADE, related_name="apple_registrations"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device_library_identifier", "card"],
                name="loyalty_apple_registration_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"device {self.device_library_identifier[:12]} for card {self.card_id}"


class WalletChange(models.Model):
    """A card whose pass content changed since the minutely sweep last looked: written by
    the card trigger (migration 0005), deleted by the sweep, so an idle minute reads an
    empty table."""

    card = models.OneToOneField(
        LoyaltyCard, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    #: The first change not yet taken (the lag of a push is measured from it).
    changed_at = models.DateTimeField()

    class Meta:
        # The sweep takes the oldest changes first, along this index.
        indexes = [models.Index(fields=["changed_at"], name="loyalty_walletchange_at_idx")]

    def __str__(self) -> str:
        return f"card {self.card_id} changed at {self.changed_at}"
