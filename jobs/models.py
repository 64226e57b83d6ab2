"""Run history, lease locks and the notification outbox."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.validators import validate_phone_number


class JobRun(models.Model):
    """One run of a registered job, whatever started it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"  # written, waiting for a worker
        RUNNING = "running", "running"  # a worker claimed it; heartbeat_at moves
        SUCCEEDED = "succeeded", "succeeded"  # finished; result holds the job's dict
        FAILED = "failed", "failed"  # raised (or its worker was lost); error holds why
        SKIPPED = "skipped", "skipped"  # another run held the lock; nothing done
        MISSED = "missed", "missed"  # a cron slot later than the misfire grace; not run
        TIMED_OUT = "timed_out", "timed out"  # stopped at a safe point after the soft limit

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "schedule"  # a django-q2 cron Schedule fired
        ADMIN = "admin", "admin"  # "Run now" / "Retry" in the admin
        COMMAND = "command", "command"  # manage.py run_job or an app command
        CHAIN = "chain", "chain"  # queued by another run (chain hop, fan-out)
        RETRY = "retry", "retry"  # automatic retry after a failure

    FINISHED = (
        Status.SUCCEEDED,
        Status.FAILED,
        Status.SKIPPED,
        Status.MISSED,
        Status.TIMED_OUT,
    )

    job = models.CharField(max_length=100)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    triggered_by = models.CharField(max_length=150, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    kwargs = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    task_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    #: Set by a job (e.g. wallet sync failure rate > 5 %) to flag the run in history and /health/.
    needs_attention = models.BooleanField(default=False)
    #: Why the run was flagged (jobs.runs.current.flag_for_attention), for history and /health/.
    attention_reason = models.CharField(max_length=500, blank=True, default="")
    #: Free-form progress a long run reports ({"done": 3, "total": 10, "unit": "days"}).
    progress = models.JSONField(null=True, blank=True)
    #: Set by jobs.reap_lost_runs when it queued the run again (its task or worker was lost).
    requeued_at = models.DateTimeField(null=True, blank=True)
    requeue_count = models.PositiveIntegerField(default=0)
    #: What the reaper found: "worker lost on host:pid ..." or "task lost in the queue ...".
    requeue_reason = models.CharField(max_length=500, blank=True, default="")
    #: When jobs.outbox.alerts counted this run into an alert; null: not (yet) counted.
    alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["job", "-created_at"], name="jobrun_job_created"),
            models.Index(fields=["status", "job"], name="jobrun_status_job"),
            models.Index(fields=["finished_at"], name="jobrun_finished"),
            # The alert scan's candidates: finished runs not yet counted into an alert.
            models.Index(
                fields=["finished_at"],
                name="jobrun_alert_pending",
                condition=models.Q(alerted_at__isnull=True)
                & (
                    models.Q(status__in=["failed", "timed_out", "missed"])
                    | models.Q(needs_attention=True)
                ),
            ),
        ]
        permissions = [("run_job", "Can run jobs now and retry failed runs")]

    def __str__(self) -> str:
        return f"{self.job} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class Lease(models.Model):
    """A named lock: held while its run is queued or alive (jobs.sql.LEASE_HELD), or, for
    a lease of no run, until `expires_at`."""

    key = models.CharField(max_length=200, primary_key=True)
    owner = models.CharField(max_length=64)
    #: The run holding it: the run itself (single flight), or a chain's current hop.
    run_id = models.BigIntegerField(null=True, blank=True)
    acquired_at = models.DateTimeField()
    #: Only for a lease of no run; a run's lease lives exactly as long as the run.
    expires_at = models.DateTimeField(null=True, blank=True)
    #: The owner this lease was last taken over from, and why ("lease expired",
    #: "database session ended", "run ended"); empty when it was free or re-acquired.
    taken_from = models.CharField(max_length=64, blank=True, default="")
    taken_reason = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.key} held by {self.owner}"


class Notification(models.Model):
    """An outbox row: written with the change that causes it, delivered later, once."""

    class Channel(models.TextChoices):
        EMAIL = "email", "email"
        SMS = "sms", "sms"
        #: A JSON POST to JOBS_ALERT_WEBHOOK_URL (recipient "alert-webhook": the URL is a
        #: secret and is read from settings at delivery, never stored here).
        WEBHOOK = "webhook", "webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"  # waiting for (another) delivery attempt
        SENDING = "sending", "sending"  # claimed by a delivery task
        SENT = "sent", "sent"  # delivered; never sent again
        DEAD = "dead", "dead"  # not delivered: see dead_reason; requeue from the admin

    class DeadReason(models.TextChoices):
        FAILED = "failed", "failed"  # every attempt failed
        TOO_LATE = "too late", "too late"  # deliver_before passed before it could be sent

    channel = models.CharField(max_length=8, choices=Channel.choices)
    recipient = models.CharField(max_length=254)
    template = models.CharField(max_length=100)
    subject = models.CharField(max_length=255, blank=True, default="")
    body = models.TextField()
    #: Unique: queueing the same notification twice is a no-op.
    dedup_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=4)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    requeued_by = models.CharField(max_length=150, blank=True, default="")
    #: Useless after this moment (a reminder of an event, a warning of a date): past it the
    #: row is never sent but marked dead, "too late". Empty: no limit.
    deliver_before = models.DateTimeField(null=True, blank=True)
    dead_reason = models.CharField(
        max_length=8, choices=DeadReason.choices, blank=True, default="", db_default=""
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notif_due"),
            models.Index(fields=["sent_at"], name="notif_sent"),
            # Delivery marks waiting rows past their deadline dead first.
            models.Index(
                fields=["deliver_before"],
                condition=Q(status="pending", deliver_before__isnull=False),
                name="notif_deliver_before",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient}: {self.template} ({self.status})"


class Alert(models.Model):
    """One problem of one job that staff were told about: open until the job next succeeds;
    at most one open per (job, kind), so a storm of 100 failures is one alert, count 100."""

    class Kind(models.TextChoices):
        FAILED = "failed", "failed for good"  # retries spent, permanent, timed out, lost
        ATTENTION = "attention", "flagged for attention"  # the job asked for a human
        MISSED = "missed", "scheduled slot missed"  # no run started within the grace

    job = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    #: Problems counted into this alert (failed runs, missed slots, flagged runs).
    count = models.PositiveIntegerField(default=1)
    #: The first problem's one-line reason (an error's first line, a flag's reason).
    reason = models.CharField(max_length=500, blank=True, default="")
    first_run = models.ForeignKey(
        JobRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run = models.ForeignKey(
        JobRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    #: When the latest problem counted into it happened; a success after it resolves it.
    last_seen_at = models.DateTimeField(default=timezone.now)
    #: When staff were last told: a problem counted more than JOBS_ALERT_REPEAT_HOURS
    #: after it tells them again ("still failing"), so an open alert never goes quiet.
    notified_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    #: The successful run that resolved it.
    resolved_by = models.ForeignKey(
        JobRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "kind"],
                condition=models.Q(resolved_at__isnull=True),
                name="alert_one_open_per_job_kind",
            )
        ]
        indexes = [models.Index(fields=["opened_at"], name="alert_opened")]

    def __str__(self) -> str:
        state = "resolved" if self.resolved_at else "open"
        return f"{self.job}: {self.get_kind_display()} x{self.count} ({state})"


class Contact(models.Model):
    """Someone the outbox can reach: by email, by SMS, or (both blank) not at all. Abstract:
    each app keeps its own table of people (apps never share data)."""

    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True, validators=[validate_phone_number])

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name
