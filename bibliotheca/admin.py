"""Admin of the bibliotheca app: collections (key write-only), their checkpoint and runs."""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from bibliotheca.conf import PURCHASE_RECORD_SERVICE
from bibliotheca.models import Collection, Edition, LicensePool, Timestamp
from bibliotheca.services.fan_out import CHAIN_JOB
from jobs.models import JobRun
from jobs.runner import enqueue_job

RUN_PERMISSION = "jobs.run_job"


class CollectionForm(forms.ModelForm):
    #: Write-only: the stored key is never rendered; leave blank to keep it.
    account_key = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False, strip=False
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
        key = self.cleaned_data["account_key"]
        if not key and self.instance.pk:
            return self.instance.account_key
        if not key:
            raise forms.ValidationError("An account key is required.")
        return key


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    form = CollectionForm
    list_display = ("name", "library_id", "account_id", "enabled", "checkpoint", "chain_progress")
    list_filter = ("enabled",)
    search_fields = ("name", "library_id")
    readonly_fields = ("checkpoint", "chain_progress", "last_error", "recent_runs")
    actions = ["import_purchase_records", "force_reimport"]

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    @admin.action(description="Import purchase records", permissions=["run"])
    def import_purchase_records(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._queue(request, queryset, force_reimport=False)

    @admin.action(description="Force reimport (from 2014-01-01)", permissions=["run"])
    def force_reimport(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._queue(request, queryset, force_reimport=True)

    def _queue(self, request: HttpRequest, queryset: QuerySet, *, force_reimport: bool) -> None:
        eligible = queryset.filter(enabled=True)
        runs = [
            enqueue_job(
                CHAIN_JOB,
                kwargs={"collection_id": c.pk, "force_reimport": force_reimport},
                trigger=JobRun.Trigger.ADMIN,
                triggered_by=request.user.get_username(),
            )
            for c in eligible
        ]
        skipped = queryset.count() - len(runs)
        what = "forced reimport" if force_reimport else "import"
        self.message_user(
            request,
            f"Queued {what} for {len(runs)} collection(s)"
            + (f"; {skipped} disabled collection(s) left out" if skipped else ""),
            messages.SUCCESS if runs else messages.WARNING,
        )

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
        return (
            f"day {str(p.get('current_day', '-'))[:10]}: {p.get('pages', 0)} pages, "
            f"{p.get('records', 0)} records, {p.get('skipped', 0)} skipped"
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
        return format_html_join(
            "",
            '<div><a href="{}">#{}</a> {} {} {} {}</div>',
            (
                (
                    reverse("admin:jobs_jobrun_change", args=[r.pk]),
                    r.pk,
                    r.job.split(".", 1)[1],
                    r.trigger,
                    r.status,
                    r.created_at.isoformat(timespec="seconds"),
                )
                for r in runs
            ),
        ) or format_html("{}", "no runs yet")


@admin.register(Timestamp)
class TimestampAdmin(admin.ModelAdmin):
    list_display = ("service", "collection", "start", "finish", "counter", "achievements")
    list_filter = ("service",)
    readonly_fields = [f.name for f in Timestamp._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # written by the importer only


@admin.register(LicensePool)
class LicensePoolAdmin(admin.ModelAdmin):
    list_display = ("identifier", "collection", "created_at", "metadata_checked_at")
    list_filter = ("collection",)
    search_fields = ("identifier__value",)
    list_select_related = ("identifier", "collection")


@admin.register(Edition)
class EditionAdmin(admin.ModelAdmin):
    list_display = ("title", "identifier", "medium", "language", "updated_at")
    list_filter = ("medium", "language")
    search_fields = ("title", "identifier__value", "isbn")
    list_select_related = ("identifier",)
