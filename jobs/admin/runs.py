"""Run history, and the jobs dashboard with "Run now"; "Retry" on failed runs."""

import json
from dataclasses import asdict

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from jobs.admin.actions import CONFIRM_MAX_ROWS, JobActionsMixin, pending_runs, run_url
from jobs.admin.charts import STATUS_COLOURS, run_chart
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.permissions import can_run_job, missing_permissions
from jobs.admin.readonly import ReadOnlyMixin
from jobs.arguments import check_job_arguments
from jobs.exceptions import BadJobArguments, UnknownJob
from jobs.health.checks import overall_status, run_checks
from jobs.health.selectors import (
    CHART_RUNS,
    job_overviews,
    notifications_by_status,
    queue_depth_by_cluster,
)
from jobs.models import JobRun, Notification
from jobs.queue.cron_words import describe_cron
from jobs.registry import all_jobs, get_job
from jobs.runs.progress import ProgressView, describe_progress

#: The admin index gets a prominent link to the jobs dashboard (see the template).
admin.site.index_template = "admin/jobs/site_index.html"


def pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


class StatusFilter(admin.SimpleListFilter):
    """`?status=failed` and `?job=<name>`: the parameters the dashboard links use."""

    title = parameter_name = "status"

    def lookups(self, request, model_admin):
        return JobRun.Status.choices

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class JobNameFilter(StatusFilter):
    title = parameter_name = "job"

    def lookups(self, request, model_admin):
        return [(spec.name, spec.name) for spec in all_jobs()]


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyMixin, JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    """History is read-only: runs are written by the runner, pruned by jobs.prune_history."""

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
    list_filter = (JobNameFilter, StatusFilter, "trigger", "needs_attention", "created_at")
    search_fields = ("job", "error", "task_id", "triggered_by")
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = ["retry_runs"]
    fields = (
        "job",
        "status_live",
        "progress_display",
        "trigger",
        "triggered_by",
        "attempt",
        "parent_link",
        "children_links",
        "kwargs_display",
        "result_display",
        "error",
        "traceback",
        "needs_attention",
        "attention_reason",
        "created_at",
        "scheduled_for",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "duration_seconds",
        "task_id",
        "host",
        "pid",
        "requeue_count",
        "requeued_at",
        "requeue_reason",
    )
    change_list_template = "admin/jobs/jobrun/change_list.html"
    change_form_template = "admin/jobs/jobrun/change_form.html"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "status_colours": STATUS_COLOURS.items()}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="status", ordering="status")
    def status_label(self, run: JobRun) -> str:
        return format_html(
            '<strong style="color:{}">{}</strong>',
            STATUS_COLOURS[run.status],
            run.get_status_display(),
        )

    @admin.display(description="status")
    def status_live(self, run: JobRun) -> str:
        return format_html(
            '<strong id="run-status" class="status status-{}">{}</strong>', run.status, run.status
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
        if (parent := run.parent) is None:
            return "-"
        return format_html(
            '<a href="{}">#{} {}</a> (<span class="status-{}">{}</span>)',
            run_url(parent),
            parent.pk,
            parent.job,
            parent.status,
            parent.status,
        )

    @admin.display(description="children (retries, chain hops)")
    def children_links(self, run: JobRun) -> str:
        links = format_html_join(
            mark_safe("<br>"),  # noqa: S308 - a constant
            '<a href="{}">#{} {}</a> ({}, <span class="status-{}">{}</span>)',
            (
                (run_url(c), c.pk, c.job, c.trigger, c.status, c.status)
                for c in run.children.order_by("id")[:50]
            ),
        )
        return links or "-"

    @admin.display(description="arguments")
    def kwargs_display(self, run: JobRun) -> str:
        return pretty_json(run.kwargs)

    @admin.display(description="result")
    def result_display(self, run: JobRun) -> str:
        return pretty_json(run.result)

    @admin.display(description="progress")
    def progress_display(self, run: JobRun) -> str:
        context = {"run": run, "progress": progress_json(run)}
        return render_to_string("admin/jobs/jobrun/progress.html", context)

    @admin.action(description="Retry selected failed runs", permissions=["run"])
    def retry_runs(self, request: HttpRequest, queryset) -> HttpResponse | None:
        """Confirm first (a retry redoes work); then queue one run per failed job and
        arguments, as you: a month of failed nights of one job is one retry (the job is
        idempotent, the other retries would redo the same work), its parent the newest.

        A run is retried only when you may run its job with its arguments (jobs.admin.permissions):
        a retry must not do what the job's own admin action would refuse you.
        """
        failed, eligible, refused, refused_count = _retryable(request.user, queryset)
        ignored = queryset.count() - failed
        repeats = failed - len(eligible) - refused_count
        if not eligible:
            self.message_user(
                request,
                f"Not retried: {'; '.join(refused)}."
                if refused
                else "None of the selected runs is a failed run of a registered job.",
                messages.ERROR if refused else messages.WARNING,
            )
            return None
        if not self.confirmed(request):
            summary = [f"Refused: {'; '.join(refused)}."] if refused else []
            if repeats:
                summary.append(
                    f"{repeats} selected failed run(s) have the job and arguments of a newer"
                    " one listed: its retry covers them."
                )
            if ignored:
                summary.append(
                    f"{ignored} selected run(s) not failed or unknown will be left alone."
                )
            return self.confirmation_page(
                request,
                action="retry_runs",
                title="Retry failed runs?",
                intro="A retry runs the job again with the same arguments, with the failed run"
                " as its parent:",
                rows=[
                    (run_url(run), f"{run.job} #{run.pk}", f"{run.kwargs}: {run.error[:140]}")
                    for run in eligible[:CONFIRM_MAX_ROWS]
                ],
                more=max(0, len(eligible) - CONFIRM_MAX_ROWS),
                summary=summary,
                selected=queryset.values_list("pk", flat=True),
                submit=f"Yes, retry {len(eligible)} run(s)",
                submit_id="confirm-retry",
            )
        created = [self.queue_job(request, run.job, run.kwargs, parent=run) for run in eligible]
        self.message_user(
            request,
            f"Queued {len(created)} retry run(s): "
            + ", ".join(f"#{r.pk}" for r in created[:CONFIRM_MAX_ROWS])
            + (
                f" and {len(created) - CONFIRM_MAX_ROWS} more"
                if len(created) > CONFIRM_MAX_ROWS
                else ""
            )
            + (f"; {repeats} with the job and arguments of a newer one, covered" if repeats else "")
            + (f"; {ignored} not failed or unknown, left alone" if ignored else "")
            + (f"; {refused_count} refused ({'; '.join(refused)})" if refused else ""),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(run_url(created[0])) if len(created) == 1 else None

    def get_urls(self):
        view = self.admin_site.admin_view
        run_now = require_http_methods(["GET", "POST"])(self.run_now_view)
        return [
            path("overview/", view(self.overview_view), name="jobs_jobrun_overview"),
            path("run-now/<str:name>/", view(run_now), name="jobs_jobrun_run_now"),
            path("<int:pk>/progress.json", view(self.progress_view), name="jobs_jobrun_progress"),
            *super().get_urls(),
        ]

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        checks = run_checks()
        overviews = job_overviews()
        context = {
            **self.admin_site.each_context(request),
            "title": "Jobs dashboard",
            "rows": [(o, run_chart(o.recent_runs)) for o in overviews],
            "chart_runs": CHART_RUNS,
            "checks": checks,
            "health_status": overall_status(checks),
            "queue_depth": queue_depth_by_cluster(),
            "dead_notifications": notifications_by_status()[Notification.Status.DEAD],
            "running": JobRun.objects.filter(status=JobRun.Status.RUNNING).count(),
            "runnable": {o.spec.name for o in overviews if can_run_job(request.user, o.spec.name)},
            "status_colours": STATUS_COLOURS.items(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/jobs/overview.html", context)

    def run_now_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """GET: what will run (schedule, default arguments, runs pending) and a confirm button.
        POST: queue it as you, land on the run."""
        if not self.has_run_permission(request):
            raise PermissionDenied
        try:
            spec = get_job(name)
            if not can_run_job(request.user, name):
                raise PermissionDenied(f"you may not run {name}")
            check_job_arguments(name, {})
        except (UnknownJob, BadJobArguments) as exc:
            self.message_user(
                request,
                f"{exc} (jobs that need arguments run from their own admin pages "
                "or `manage.py run_job`)",
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse("admin:jobs_jobrun_overview"))
        if request.method == "POST":
            run = self.queue_job(request, name, {})
            self.message_user(request, f"Queued {name} as run #{run.pk}.", messages.SUCCESS)
            return HttpResponseRedirect(run_url(run))
        defaults = [
            (p.name, p.default) for p in spec.parameters().values() if p.default is not p.empty
        ]
        arguments = format_html_join(", ", "<code>{}={}</code>", defaults) or "none"
        cron = format_html(" (<code>{}</code>)", spec.cron) if spec.cron else ""
        flight = "yes (a concurrent run is recorded as skipped)" if spec.single_flight else "no"
        return self.confirmation_page(
            request,
            title=f"Run {spec.name} now?",
            intro=f"This queues {spec.name} on the {spec.cluster} cluster now.",
            summary=[
                spec.description or "(no description)",
                format_html("Schedule: {}{}", describe_cron(spec.cron), cron),
                format_html("Arguments: {} (defaults)", arguments),
                f"Single flight: {flight}; time limit {spec.timeout_seconds} s",
            ],
            pending=pending_runs(spec.name),
            pending_note="Already queued or running:",
            submit=f"Yes, run {spec.name} now",
            submit_id="confirm-run-now",
            back_url=reverse("admin:jobs_jobrun_overview"),
        )

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """What the run page polls every 2 s while the run is queued or running."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if (run := JobRun.objects.filter(pk=pk).first()) is None:
            return JsonResponse({"error": f"no run #{pk}"}, status=404)
        return JsonResponse(progress_json(run))


def progress_json(run: JobRun) -> dict:
    """What the bar on a run's page shows, and what its script polls: status and progress."""
    view = describe_progress(run.progress) or ProgressView(None, "")
    return {"status": run.status, "finished": run.is_finished, **asdict(view)}


def _retryable(user, queryset) -> tuple[int, list[JobRun], list[str], int]:
    """(how many selected runs are failed runs of registered jobs; the newest of each job
    and arguments, newest first, that `user` may retry; why the others are refused; how
    many are refused).

    Refused: the user lacks a permission of the job, or its arguments no longer pass the
    job's checks (the exchange was matched since, the program was deleted).
    """
    registered = [spec.name for spec in all_jobs()]
    failed = queryset.filter(status=JobRun.Status.FAILED, job__in=registered)
    newest = failed.order_by("job", "kwargs", "-pk").distinct("job", "kwargs")
    eligible, lacking, invalid, refused = [], set(), [], 0
    for run in sorted(newest, key=lambda run: -run.pk):
        if missing := missing_permissions(user, run.job, run.kwargs):
            lacking.update(missing)
            refused += 1
            continue
        try:
            check_job_arguments(run.job, run.kwargs)
        except BadJobArguments as exc:
            invalid.append(f"run #{run.pk}: {exc}")
            refused += 1
            continue
        eligible.append(run)
    reasons = [f"you lack {', '.join(sorted(lacking))}"] if lacking else []
    return failed.count(), eligible, reasons + invalid, refused
