"""Operator surface: run history, a jobs overview with "Run now", "Retry", and the outbox."""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from jobs.exceptions import BadJobArguments, UnknownJob
from jobs.models import JobRun, Lease, Notification
from jobs.registry import all_jobs, get_job
from jobs.runner import enqueue_job
from jobs.selectors import job_overviews
from jobs.services.outbox import requeue_notifications

RUN_PERMISSION = "jobs.run_job"


def actor(request: HttpRequest) -> str:
    return request.user.get_username() or f"user:{request.user.pk}"


def pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


class JobNameFilter(admin.SimpleListFilter):
    title = "job"
    parameter_name = "job"

    def lookups(self, request, model_admin):
        return [(spec.name, spec.name) for spec in all_jobs()]

    def queryset(self, request, queryset):
        return queryset.filter(job=self.value()) if self.value() else queryset


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "job",
        "status_label",
        "trigger",
        "triggered_by",
        "attempt",
        "created_at",
        "duration",
        "needs_attention",
        "summary",
    )
    list_display_links = ("id", "job")
    list_filter = (JobNameFilter, "status", "trigger", "needs_attention", "created_at")
    search_fields = ("job", "error", "task_id", "triggered_by")
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = ["retry_runs"]
    fields = (
        "job",
        "status",
        "trigger",
        "triggered_by",
        "attempt",
        "parent_link",
        "children_links",
        "kwargs_display",
        "result_display",
        "progress_display",
        "error",
        "traceback",
        "needs_attention",
        "created_at",
        "scheduled_for",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "duration_seconds",
        "task_id",
        "host",
        "pid",
    )
    readonly_fields = fields
    change_list_template = "admin/jobs/jobrun/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # history is read-only

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # pruned by jobs.prune_history only

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    @admin.display(description="status", ordering="status")
    def status_label(self, run: JobRun) -> str:
        colours = {"succeeded": "#2e7d32", "failed": "#c62828", "skipped": "#6d6d6d"}
        return format_html(
            '<strong style="color:{}">{}</strong>', colours.get(run.status, "#1565c0"), run.status
        )

    @admin.display(description="duration")
    def duration(self, run: JobRun) -> str:
        return f"{run.duration_seconds:.2f}s" if run.duration_seconds is not None else "-"

    @admin.display(description="result / error")
    def summary(self, run: JobRun) -> str:
        text = run.error or (json.dumps(run.result, default=str) if run.result else "")
        return text[:120]

    @admin.display(description="parent")
    def parent_link(self, run: JobRun) -> str:
        if not run.parent_id:
            return "-"
        url = reverse("admin:jobs_jobrun_change", args=[run.parent_id])
        return format_html('<a href="{}">#{}</a>', url, run.parent_id)

    @admin.display(description="children (retries, chain hops)")
    def children_links(self, run: JobRun) -> str:
        children = list(run.children.order_by("id").values_list("id", "status")[:50])
        if not children:
            return "-"
        return format_html_join(
            " ",
            '<a href="{}">#{} {}</a>',
            (
                (reverse("admin:jobs_jobrun_change", args=[pk]), pk, status)
                for pk, status in children
            ),
        )

    @admin.display(description="arguments")
    def kwargs_display(self, run: JobRun) -> str:
        return pretty_json(run.kwargs)

    @admin.display(description="result")
    def result_display(self, run: JobRun) -> str:
        return pretty_json(run.result)

    @admin.display(description="progress")
    def progress_display(self, run: JobRun) -> str:
        return pretty_json(run.progress) if run.progress else "-"

    @admin.action(description="Retry selected failed runs", permissions=["run"])
    def retry_runs(self, request: HttpRequest, queryset) -> None:
        failed = list(queryset.filter(status=JobRun.Status.FAILED))
        created = []
        for run in failed:
            try:
                get_job(run.job)
            except UnknownJob:
                continue
            created.append(
                enqueue_job(
                    run.job,
                    kwargs=run.kwargs,
                    trigger=JobRun.Trigger.ADMIN,
                    triggered_by=actor(request),
                    parent=run,
                )
            )
        ignored = queryset.count() - len(created)
        self.message_user(
            request,
            f"Queued {len(created)} retry run(s): "
            + ", ".join(f"#{r.pk}" for r in created)
            + (f"; {ignored} not failed or unknown, left alone" if ignored else ""),
            messages.SUCCESS if created else messages.WARNING,
        )

    def get_urls(self):
        urls = super().get_urls()
        custom = [
            path(
                "overview/",
                self.admin_site.admin_view(self.overview_view),
                name="jobs_jobrun_overview",
            ),
            path(
                "run-now/<str:name>/",
                self.admin_site.admin_view(require_POST(self.run_now_view)),
                name="jobs_jobrun_run_now",
            ),
        ]
        return custom + urls

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Jobs",
            "overviews": job_overviews(),
            "can_run": self.has_run_permission(request),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/jobs/overview.html", context)

    def run_now_view(self, request: HttpRequest, name: str) -> HttpResponse:
        if not self.has_run_permission(request):
            raise PermissionDenied
        try:
            run = enqueue_job(name, trigger=JobRun.Trigger.ADMIN, triggered_by=actor(request))
        except (UnknownJob, BadJobArguments) as exc:
            self.message_user(
                request,
                f"{exc} (jobs that need arguments run from their own admin pages "
                "or `manage.py run_job`)",
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse("admin:jobs_jobrun_overview"))
        self.message_user(request, f"Queued {name} as run #{run.pk}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:jobs_jobrun_change", args=[run.pk]))


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "channel",
        "recipient",
        "template",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "short_error",
    )
    list_filter = ("status", "channel", "template")
    search_fields = ("recipient", "dedup_key", "subject")
    date_hierarchy = "created_at"
    actions = ["requeue"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="last error")
    def short_error(self, row: Notification) -> str:
        return row.last_error[:100]

    @admin.action(description="Requeue selected dead/failed notifications", permissions=["change"])
    def requeue(self, request: HttpRequest, queryset) -> None:
        count = requeue_notifications(queryset.values_list("pk", flat=True), actor=actor(request))
        self.message_user(request, f"Requeued {count} notification(s) (sent ones left alone).")


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("key", "owner", "acquired_at", "expires_at")
    readonly_fields = ("key", "owner", "acquired_at", "expires_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
