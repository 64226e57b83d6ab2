"""Models of the bibliotheca app: collections, the identifiers and pools they license, editions."""

from django.db import models
from django.utils import timezone

from bibliotheca.validators import validate_account_key, validate_base_url, validate_library_id


class HttpsURLField(models.URLField):
    """A URL whose form reads an address typed without a scheme as https (Django 6's
    default, chosen now rather than left to a deprecation warning)."""

    def formfield(self, **kwargs):
        return super().formfield(**{"assume_scheme": "https", **kwargs})


class Collection(models.Model):
    """A Bibliotheca (cloudLibrary) account the importer reads from."""

    class Protocol(models.TextChoices):
        BIBLIOTHECA = "bibliotheca", "Bibliotheca"

    name = models.CharField(max_length=200, unique=True)
    protocol = models.CharField(
        max_length=32, choices=Protocol.choices, default=Protocol.BIBLIOTHECA
    )
    #: One path segment of every request (/cirrus/library/<id>/...): a plain token.
    library_id = models.CharField(max_length=100, validators=[validate_library_id])
    account_id = models.CharField(max_length=100)
    #: Secret HMAC key: never logged, never rendered or filterable in the admin (write-only).
    account_key = models.CharField(max_length=255, validators=[validate_account_key])
    #: Where the worker sends the signed requests: https and an allowed host only.
    base_url = HttpsURLField(
        default="https://partner.yourcloudlibrary.com/", validators=[validate_base_url]
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # the account key stays out of logs and tracebacks
        return f"<Collection {self.pk} {self.name!r}>"


class Identifier(models.Model):
    """A foreign id, e.g. (Bibliotheca ID, "ab12cd")."""

    class Type(models.TextChoices):
        BIBLIOTHECA_ID = "bibliotheca", "Bibliotheca ID"
        ISBN = "isbn", "ISBN"

    type = models.CharField(max_length=32, choices=Type.choices)
    value = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["type", "value"], name="identifier_type_value_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


class LicensePool(models.Model):
    """A title a collection has licensed (one per purchase-record 001 id)."""

    # No index of its own: the unique (collection, identifier) index leads with it, and
    # the planner took this one for a page's ids, filtering every pool of the collection.
    collection = models.ForeignKey(
        Collection, on_delete=models.CASCADE, related_name="pools", db_index=False
    )
    identifier = models.ForeignKey(Identifier, on_delete=models.CASCADE, related_name="pools")
    created_at = models.DateTimeField(default=timezone.now)
    #: When item metadata was last looked up; None or old means "due" for a lookup.
    metadata_checked_at = models.DateTimeField(null=True, blank=True)
    #: Hash of the purchase record last read: a re-delivered record whose MARC changed
    #: is looked up again whatever its last check ("" for pools read before the hash).
    marc_hash = models.CharField(max_length=64, blank=True, default="")
    #: Since when the partner's items answer leaves this item out: counted, reported and
    #: not looked up again until its record changes.
    item_missing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "identifier"], name="licensepool_collection_identifier_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.identifier} in {self.collection_id}"


class EditionData(models.Model):
    """The bibliographic columns an Edition holds and a PendingEdition stages for it."""

    class Medium(models.TextChoices):
        EBOOK = "ebook", "eBook"
        AUDIOBOOK = "audiobook", "Audiobook"

    title = models.CharField(max_length=500, blank=True, default="")
    subtitle = models.CharField(max_length=500, blank=True, default="")
    authors = models.JSONField(default=list, blank=True)
    narrator = models.CharField(max_length=255, blank=True, default="")
    publisher = models.CharField(max_length=255, blank=True, default="")
    language = models.CharField(max_length=16, blank=True, default="")
    medium = models.CharField(max_length=16, choices=Medium.choices, default=Medium.EBOOK)
    isbn = models.CharField(max_length=20, blank=True, default="")
    published = models.DateField(null=True, blank=True)
    description = models.TextField(blank=True, default="")
    cover_url = HttpsURLField(max_length=1000, blank=True, default="")
    link_url = HttpsURLField(max_length=1000, blank=True, default="")

    class Meta:
        abstract = True


class Edition(EditionData):
    """Bibliographic data of an identifier, written only by the apply task."""

    identifier = models.OneToOneField(Identifier, on_delete=models.CASCADE, related_name="edition")
    #: Hash of the item data last applied; an import queues apply only when it differs.
    data_hash = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.title or str(self.identifier_id)


class PendingEdition(EditionData):
    """An Edition's new data, staged by an import page for its apply run (`batch`): rows
    here rather than in the run's kwargs (a jsonb rewrite of the run per page), taken by
    the run in one statement (sql.apply_staged)."""

    #: The apply run's `batch` kwarg.
    batch = models.UUIDField(db_index=True)
    # No index of its own: rows live until their run applies them; a rare identifier
    # delete can scan the few that wait.
    identifier = models.ForeignKey(
        Identifier, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    data_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # A title staged by one collection is not staged again by another (same hash)
            # while its apply waits: the stage statement probes this.
            models.Index(fields=["identifier", "data_hash"], name="pendingedition_ident_hash_idx")
        ]

    def __str__(self) -> str:
        return f"{self.identifier_id} in batch {self.batch}"


class Gap(models.Model):
    """A day window the chain gave up on after its retries, so that one bad day does not
    hold the collection's checkpoint: the chain moves past it, and later chains read it
    again at their end until it succeeds or an operator dismisses it."""

    class Status(models.TextChoices):
        #: Waiting to be read again by the next chain (or the "Retry gaps" action).
        OPEN = "open", "Open"
        #: Read whole on a later try: its records are imported.
        RESOLVED = "resolved", "Resolved"
        #: An operator gave up on it: no chain reads it again.
        DISMISSED = "dismissed", "Dismissed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="gaps")
    #: The window [day, window_end) the chain could not read.
    day = models.DateTimeField()
    window_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    #: The last failure, naming the collection and the window.
    error = models.TextField(blank=True, default="")
    #: Tries so far: the chain's attempts when it gave up, then one per later try.
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    last_tried_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    #: Who dismissed it (an admin user), empty otherwise.
    dismissed_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["collection", "day"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "day"], name="gap_collection_day_uniq")
        ]
        indexes = [
            models.Index(
                fields=["collection", "day"],
                condition=models.Q(status="open"),
                name="gap_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.collection_id} {self.day:%Y-%m-%d %H:%M} ({self.status})"


class Timestamp(models.Model):
    """Where a service stands for a collection: the import checkpoint (`finish`)."""

    class ServiceType(models.TextChoices):
        TASK = "task", "Task"

    service = models.CharField(max_length=100)
    service_type = models.CharField(
        max_length=16, choices=ServiceType.choices, default=ServiceType.TASK
    )
    collection = models.ForeignKey(
        Collection, null=True, blank=True, on_delete=models.CASCADE, related_name="timestamps"
    )
    #: When the current (or last) chain started.
    start = models.DateTimeField(null=True, blank=True)
    #: Checkpoint: the next chain resumes here (mid-day: that day from offset 1).
    finish = models.DateTimeField(null=True, blank=True)
    achievements = models.TextField(blank=True, default="")
    #: Records received in the current (or last) chain.
    counter = models.PositiveIntegerField(default=0)
    #: Last terminal error of the chain, with collection and window; cleared on success.
    exception = models.TextField(blank=True, default="")
    #: Chain progress: current day, pages, records, skipped, new pools, applies queued, hops.
    progress = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service", "collection"], name="timestamp_service_collection_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.collection_id}: {self.finish}"
