"""Admin of the bibliotheca app: collections (key write-only), their checkpoint, gaps and
runs; the actions queue one chain per enabled collection (docs/bibliotheca.md "Run and
re-run")."""

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from bibliotheca.conf import DEFAULT_START, PURCHASE_RECORD_SERVICE
from bibliotheca.models import (
    Collection,
    Edition,
    Gap,
    LicensePool,
    PendingEdition,
    Timestamp,
)
from bibliotheca.services.purchase_chain import CHAIN_JOB
from jobs.admin.actions import JobActionsMixin, actor, job_action, pending_runs, run_url
from jobs.admin.form_fields import StrictJSONField
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.readonly import ReadOnlyMixin
from jobs.models import JobRun


class CollectionForm(forms.ModelForm):
    #: Write-only: the stored key is never rendered; leave blank to keep it.
    account_key = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        help_text="Write-only: never shown. Leave blank to keep the stored key.",
    )

    class Meta:
        model = Collection
        fields = [
            "name",
            "protocol",
            "library_id",
            "account_id",
            "account_key",
            "base_url",
            "enabled",
        ]

    def clean_account_key(self) -> str:
        typed = self.cleaned_data["account_key"]
        key = typed.strip()  # spaces around a pasted key are never part of it
        if typed and not key:
            raise forms.ValidationError("An account key of only spaces is not a key.")
        if not key and self.instance.pk:
            return self.instance.account_key
        if not key:
            raise forms.ValidationError("An account key is required.")
        return key


@admin.register(Collection)
class CollectionAdmin(JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    form = CollectionForm
    ordering = ("name",)  # unique: pages never repeat or skip one
    list_display = (
        "name",
        "library_id",
        "account_id",
        "enabled",
        "checkpoint",
        "chain_progress",
        "open_gaps",
    )
    list_filter = ("enabled",)
    search_fields = ("name", "library_id")
    secret_fields = ("account_key",)
    readonly_fields = (
        "key_state",
        "checkpoint",
        "chain_progress",
        "last_error",
        "gaps",
        "recent_runs",
    )
    actions = ["import_purchase_records", "force_reimport"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Collection]:
        return (
            super()
            .get_queryset(request)
            .annotate(_open_gaps=Count("gaps", filter=Q(gaps__status=Gap.Status.OPEN)))
        )

    def get_fields(self, request: HttpRequest, obj: Collection | None = None) -> list[str]:
        """The key is a write-only input: a page that cannot set it (view-only) has no key
        field at all, since Django's read-only rendering prints a field's stored value."""
        fields = list(super().get_fields(request, obj))
        if obj is None:
            fields.remove("key_state")
        elif not self.has_change_permission(request, obj):
            fields.remove("account_key")
        return fields

    @admin.display(description="account key")
    def key_state(self, collection: Collection) -> str:
        return "set" if collection.account_key else "not set"

    @job_action(CHAIN_JOB, description="Import purchase records")
    def import_purchase_records(
        self, request: HttpRequest, queryset: QuerySet[Collection]
    ) -> HttpResponse | None:
        """No confirmation: a chain resumes at the checkpoint and redoes nothing."""
        return self._queue(request, queryset, force_reimport=False)

    @job_action(
        CHAIN_JOB,
        description="Force reimport (from 2014-01-01; asks first)",
        kwargs={"force_reimport": True},
    )
    def force_reimport(
        self, request: HttpRequest, queryset: QuerySet[Collection]
    ) -> HttpResponse | None:
        """Confirm (the whole history is read again), then queue one chain per collection."""
        eligible = list(queryset.filter(enabled=True).order_by("pk"))
        if not eligible or self.confirmed(request):
            return self._queue(request, queryset, force_reimport=True)
        days = (timezone.now() - DEFAULT_START).days + 1

        def row(c: Collection) -> tuple[str, str, str]:
            ts = self._timestamp(c)
            checkpoint = (
                f"checkpoint {ts.finish:%Y-%m-%d %H:%M} UTC moves back"
                if ts and ts.finish
                else "never imported"
            )
            return (
                reverse("admin:bibliotheca_collection_change", args=[c.pk]),
                c.name,
                f"{checkpoint}; about {days} days re-read from 2014-01-01",
            )

        return self.confirm_chosen(
            request,
            queryset,
            eligible,
            row,
            action="force_reimport",
            title="Force a reimport from 2014-01-01?",
            intro=(
                "Each collection's import restarts at 2014-01-01 and re-reads every purchase"
                " record page from then to now, whatever its checkpoint: the checkpoint moves"
                " back to 2014-01-01 and advances again day by day. Pools already imported are"
                " kept; editions whose metadata changed are rewritten. A long history takes"
                " many hops (the run page shows days done of days to do)."
            ),
            skipped_note="are disabled and will be left alone",
            pending=pending_runs(CHAIN_JOB, kwargs__collection_id__in=[c.pk for c in eligible]),
            pending_note=(
                "A chain is already queued or running for some of these collections (the new"
                " chain is recorded skipped while the other holds the collection's lock):"
            ),
            submit="Yes, reimport everything",
        )

    def _queue(
        self, request: HttpRequest, queryset: QuerySet[Collection], *, force_reimport: bool
    ) -> HttpResponse | None:
        what = "forced reimport" if force_reimport else "import"
        eligible = self.eligible(
            request,
            queryset.filter(enabled=True),
            none=f"No enabled collection selected: no {what} queued.",
        )
        if not eligible:
            return None
        skipped = queryset.count() - len(eligible)
        left_out = f"; {skipped} disabled collection(s) left out" if skipped else ""
        runs = [
            self.queue_job(
                request, CHAIN_JOB, {"collection_id": c.pk, "force_reimport": force_reimport}
            )
            for c in eligible
        ]
        if len(runs) == 1 and request.user.has_perm("jobs.view_jobrun"):
            self.message_user(
                request, f"Queued {what} of {eligible[0].name} as run #{runs[0].pk}{left_out}."
            )
            return HttpResponseRedirect(run_url(runs[0]))
        self.message_user(
            request,
            format_html(
                "Queued {} for {} collection(s): {}{}",
                what,
                len(runs),
                format_html_join(
                    ", ",
                    '<a href="{}">#{} ({})</a>',
                    ((run_url(r), r.pk, c.name) for c, r in zip(eligible, runs, strict=True)),
                ),
                left_out,
            ),
        )
        return None

    def _timestamp(self, collection: Collection) -> Timestamp | None:
        return collection.timestamps.filter(service=PURCHASE_RECORD_SERVICE).first()

    @admin.display(description="checkpoint (Timestamp.finish)")
    def checkpoint(self, collection: Collection) -> str:
        ts = self._timestamp(collection)
        return ts.finish.isoformat() if ts and ts.finish else "never imported"

    @admin.display(description="chain progress")
    def chain_progress(self, collection: Collection) -> str:
        ts = self._timestamp(collection)
        if not ts or not ts.progress:
            return "-"
        p = ts.progress
        day = p.get("current_day") or (ts.finish and ts.finish.isoformat()) or "-"
        return (
            f"day {str(day)[:10]}: {p.get('pages', 0)} pages, "
            f"{p.get('records', 0)} records, {p.get('skipped', 0)} skipped"
        )

    @admin.display(description="open gaps", ordering="_open_gaps")
    def open_gaps(self, collection: Collection) -> int:
        return getattr(collection, "_open_gaps", 0)

    @admin.display(description="gaps (windows a chain gave up on)")
    def gaps(self, collection: Collection) -> str:
        rows = list(collection.gaps.filter(status=Gap.Status.OPEN).order_by("day")[:20])
        link = (
            reverse("admin:bibliotheca_gap_changelist") + f"?collection__id__exact={collection.pk}"
        )
        if not rows:
            return format_html('none open (<a href="{}">all gaps</a>)', link)
        return format_html(
            '{}<div><a href="{}">all gaps of this collection</a> (retry or dismiss there)</div>',
            format_html_join(
                "",
                "<div>{} .. {}: {} attempt(s), last {}</div>",
                (
                    (
                        g.day.isoformat(timespec="minutes"),
                        g.window_end.isoformat(timespec="minutes"),
                        g.attempts,
                        g.error[:200],
                    )
                    for g in rows
                ),
            ),
            link,
        )

    @admin.display(description="last chain error")
    def last_error(self, collection: Collection) -> str:
        ts = self._timestamp(collection)
        return ts.exception if ts and ts.exception else "-"

    @admin.display(description="recent runs")
    def recent_runs(self, collection: Collection) -> str:
        runs = JobRun.objects.filter(
            job__startswith="bibliotheca.", kwargs__collection_id=collection.pk
        ).order_by("-id")[:20]
        return (
            format_html_join(
                "",
                '<div><a href="{}">#{}</a> {} {} {} {}</div>',
                (
                    (
                        run_url(r),
                        r.pk,
                        r.job.split(".", 1)[1],
                        r.trigger,
                        r.status,
                        r.created_at.isoformat(timespec="seconds"),
                    )
                    for r in runs
                ),
            )
            or "no runs yet"
        )


@admin.register(Gap)
class GapAdmin(ReadOnlyMixin, JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    """Day windows a chain gave up on, recorded by the chain only. Every chain reads the
    open ones again at its end; "Retry gaps" queues that chain now (as "Import purchase
    records": `jobs.run_job`), "Dismiss" stops reading them (the gap change permission)."""

    list_display = (
        "collection",
        "day",
        "window_end",
        "status",
        "attempts",
        "last_tried_at",
        "error",
    )
    list_filter = ("status", "collection")
    list_select_related = ("collection",)
    readonly_fields = [f.name for f in Gap._meta.fields]
    actions = ["retry_gaps", "dismiss_gaps"]

    @job_action(CHAIN_JOB, description="Retry gaps (queue an import of their collections)")
    def retry_gaps(self, request: HttpRequest, queryset: QuerySet[Gap]) -> HttpResponse | None:
        """One chain per collection of the selected open gaps: it resumes at the
        checkpoint and reads every open gap of its collection at its end."""
        gaps = queryset.filter(status=Gap.Status.OPEN, collection__enabled=True)
        left_out = queryset.count() - gaps.count()
        note = f" ({left_out} dismissed, resolved or of a disabled collection left out)"
        collections = self.eligible(
            request,
            Collection.objects.filter(gaps__in=gaps).distinct(),
            none=f"No open gap of an enabled collection selected{note}.",
        )
        if not collections:
            return None
        runs = [
            self.queue_job(request, CHAIN_JOB, {"collection_id": c.pk, "force_reimport": False})
            for c in collections
        ]
        names = {c.pk: c.name for c in collections}
        return self.report_runs(
            request,
            runs,
            detail=f"to read {gaps.count()} open gap(s) again{note if left_out else ''}",
            label=lambda run: f" ({names[run.kwargs['collection_id']]})",
        )

    @admin.action(description="Dismiss gaps (no chain reads them again)", permissions=["update"])
    def dismiss_gaps(self, request: HttpRequest, queryset: QuerySet[Gap]) -> None:
        count = queryset.filter(status=Gap.Status.OPEN).update(
            status=Gap.Status.DISMISSED, dismissed_by=actor(request)
        )
        self.message_user(request, f"Dismissed {count} open gap(s).")


@admin.register(Timestamp)
class TimestampAdmin(ReadOnlyMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    """Written by the importer only."""

    list_display = ("service", "collection", "start", "finish", "counter", "achievements")
    list_filter = ("service",)
    readonly_fields = [f.name for f in Timestamp._meta.fields]


@admin.register(LicensePool)
class LicensePoolAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = (
        "identifier",
        "collection",
        "created_at",
        "metadata_checked_at",
        "item_missing_since",
    )
    list_filter = ("collection",)
    search_fields = ("identifier__value",)
    list_select_related = ("identifier", "collection")


@admin.register(Edition)
class EditionAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("title", "identifier", "medium", "language", "updated_at")
    formfield_overrides = {models.JSONField: {"form_class": StrictJSONField}}
    list_filter = ("medium", "language")
    search_fields = ("title", "identifier__value", "isbn")
    list_select_related = ("identifier",)


@admin.register(PendingEdition)
class PendingEditionAdmin(ReadOnlyMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    """Edition rows staged by imports and not applied yet (written by the importer, taken by
    the apply run): rows of a batch whose apply run failed for good wait here until the run
    is re-run (same kwargs)."""

    list_display = ("batch", "identifier", "title", "data_hash", "created_at")
    search_fields = ("=batch", "identifier__value")
    list_select_related = ("identifier",)
    readonly_fields = [f.name for f in PendingEdition._meta.fields]
