"""Models of the exchanges app: exchanges, their people and draws, reminders, auth leftovers.

All datetimes are stored in UTC; an exchange's `timezone` is only used to compute and
show wall-clock times. Every column a cleanup or sweep filters by carries an index.
"""

from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, F, Q
from django.db.models.functions import Lower
from django.utils.timezone import now as utc_now

from jobs.validators import validate_timezone_name


def default_reminder_days() -> list[int]:
    return [7, 3, 1]


#: Exchange dates the local clock and reminders up to 365 days before can be computed for.
EXCHANGE_YEARS = (2000, 2999)


def validate_exchange_date(value) -> None:
    """A date whose local clock and reminders exist: years 2000 to 2999."""
    low, high = EXCHANGE_YEARS
    if value is not None and not low <= value.year <= high:
        raise ValidationError(
            f"the exchange date must be between {low} and {high}", code="exchange_date"
        )


def validate_reminder_days(value: object) -> None:
    """A list of distinct whole days before the exchange, each between 1 and 365."""
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 365 for d in value
    ):
        raise ValidationError("reminder days must be a list of whole days from 1 to 365")
    if len(set(value)) != len(value):
        raise ValidationError("reminder days must not repeat")


class Exchange(models.Model):
    """One gift exchange, from draft to purge."""

    class State(models.TextChoices):
        DRAFT = "draft", "draft"  # being set up by the organizer
        REGISTRATION_OPEN = "registration_open", "registration open"  # people may join
        MATCHED = "matched", "matched"  # names drawn; reminders scheduled
        COMPLETED = "completed", "completed"  # date passed; purged 30 days later

    name = models.CharField(max_length=200)
    organizer_email = models.EmailField()
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone_name])
    #: The moment of the exchange, stored in UTC.
    exchange_at = models.DateTimeField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    completed_at = models.DateTimeField(null=True, blank=True)
    reminder_days = models.JSONField(
        default=default_reminder_days, validators=[validate_reminder_days]
    )
    #: Set when the organizer is warned of the purge; not repeated unless the date moves.
    purge_warning_sent_at = models.DateTimeField(null=True, blank=True)
    #: The first moment of the day that warning promised (the exchange's zone): the purge
    #: never deletes before it, and keeps it (a run a few ms early in its minute included).
    purge_after = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        ordering = ["exchange_at", "id"]
        indexes = [
            models.Index(fields=["state", "exchange_at"], name="exchange_state_date"),
            models.Index(fields=["state", "completed_at"], name="exchange_state_completed"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["draft", "registration_open", "matched", "completed"]),
                name="exchange_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(state="completed", completed_at__isnull=False) | ~Q(state="completed"),
                name="exchange_completed_has_date",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            validate_exchange_date(self.exchange_at)
        except ValidationError as exc:
            raise ValidationError({"exchange_at": exc.messages}) from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def local_exchange_at(self):
        """The exchange moment on the wall clock of its own timezone."""
        return self.exchange_at.astimezone(self.zone)


class Participant(models.Model):
    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="participants")
    name = models.CharField(max_length=200)
    email = models.EmailField()
    reminder_enabled = models.BooleanField(default=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["exchange_id", "id"]
        constraints = [
            # One mailbox, one participant: addresses differing in capitals reach the same
            # person, who could draw themself and would read both draws.
            models.UniqueConstraint(
                "exchange",
                Lower("email"),
                name="participant_unique_email_ci",
                violation_error_message="This email address is already in this exchange.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class Exclusion(models.Model):
    """Two participants who must not draw each other (either way round)."""

    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="exclusions")
    participant_a = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="+")
    participant_b = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participant_a", "participant_b"], name="exclusion_unique_pair"
            ),
            models.CheckConstraint(
                condition=~Q(participant_a=F("participant_b")), name="exclusion_two_people"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant_a_id} x {self.participant_b_id}"


class Match(models.Model):
    """The draw: `giver` buys a gift for `receiver`."""

    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="matches")
    giver = models.OneToOneField(Participant, on_delete=models.CASCADE, related_name="match")
    receiver = models.OneToOneField(Participant, on_delete=models.CASCADE, related_name="drawn_by")
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name_plural = "matches"
        constraints = [
            models.CheckConstraint(condition=~Q(giver=F("receiver")), name="match_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.giver_id} -> {self.receiver_id}"


class Reminder(models.Model):
    """One configured interval of an exchange: due at the local wall-clock time N days before."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "scheduled"  # waiting for the sweep
        SENT = "sent", "sent"  # queued to every opted-in participant
        #: Due time already past when planned, or exchange not matched.
        SKIPPED = "skipped", "skipped"
        MISSED = "missed", "missed"  # the sweep came more than the grace period late

    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="reminders")
    days_before = models.PositiveSmallIntegerField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["exchange_id", "due_at"]
        indexes = [models.Index(fields=["status", "due_at"], name="reminder_status_due")]
        constraints = [
            models.UniqueConstraint(
                fields=["exchange", "days_before"],
                condition=Q(status="scheduled"),
                name="reminder_one_scheduled_per_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exchange_id}: {self.days_before} days before ({self.status})"


class MagicToken(models.Model):
    """A one-time login link; only its hash is stored."""

    email = models.EmailField()
    token_hash = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(default=utc_now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"token for {self.email}"


class RateLimit(models.Model):
    """A counter per key (e.g. "login:1.2.3.4") until it expires."""

    key = models.CharField(max_length=200, unique=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


def counts_by_exchange(model: type[models.Model], ids: Iterable[int], **filters) -> dict[int, int]:
    """How many `model` rows each exchange has (one query)."""
    return dict(
        model.objects.filter(exchange_id__in=list(ids), **filters)
        .values("exchange_id")
        .annotate(n=Count("pk"))
        .values_list("exchange_id", "n")
    )
