"""Admin actions that run a job: who may, what they are asked first, where they land.

How an app uses it: docs/architecture.md, "An admin action".
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from jobs.admin.permissions import RUN_PERMISSION, can_run_job
from jobs.exceptions import BadJobArguments
from jobs.models import JobRun
from jobs.runner import enqueue_job

#: Objects listed one by one on a confirmation page; the rest are counted.
CONFIRM_MAX_ROWS = 100


def actor(request: HttpRequest) -> str:
    """What `triggered_by` records for an admin user."""
    return request.user.get_username() or f"user:{request.user.pk}"


def run_url(run: JobRun) -> str:
    return reverse("admin:jobs_jobrun_change", args=[run.pk])


def pending_runs(job_name: str, **filters: Any) -> list[JobRun]:
    """Runs of `job_name` queued or running, oldest first: what a confirmation page warns
    of (`filters` narrow them to the selected objects, e.g. `kwargs__exchange_id__in`)."""
    live = [JobRun.Status.QUEUED, JobRun.Status.RUNNING]
    runs = JobRun.objects.filter(job=job_name, status__in=live, **filters).order_by("pk")
    return list(runs[:CONFIRM_MAX_ROWS])


def job_action(
    job_name: str, *, description: str, kwargs: dict[str, Any] | None = None
) -> Callable:
    """`@admin.action` for an action that queues `job_name`, offered to who may run it with
    `kwargs` (the arguments that need more, e.g. `{"force_reimport": True}`)."""

    def decorator(func: Callable) -> Callable:
        func = admin.action(description=description, permissions=["run"])(func)
        func.job_name = job_name  # type: ignore[attr-defined]
        func.job_kwargs = dict(kwargs or {})  # type: ignore[attr-defined]
        return func

    return decorator


class JobActionsMixin:
    """For a ModelAdmin whose actions queue jobs (`@job_action`) or need `jobs.run_job`
    (`permissions=["run"]`)."""

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Run the chosen action all or nothing: when a job's check refuses the arguments an
        action built (a row changed since it was chosen), no run is queued and it says why."""
        try:
            with transaction.atomic():
                return super().response_action(request, queryset)  # type: ignore[misc]
        except BadJobArguments as exc:
            self.message_user(request, f"Nothing queued: {exc}", messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """Django's actions minus the job actions whose job this user may not run."""
        actions = super().get_actions(request)  # type: ignore[misc]
        return {
            name: entry
            for name, entry in actions.items()
            if getattr(entry[0], "job_name", None) is None
            or can_run_job(request.user, entry[0].job_name, entry[0].job_kwargs)
        }

    def eligible(self, request: HttpRequest, queryset: QuerySet, *, none: str) -> list[Any]:
        """The selected rows the action applies to, in id order; none: a warning, and []."""
        rows = list(queryset.order_by("pk"))
        if not rows:
            self.message_user(request, none, messages.WARNING)  # type: ignore[attr-defined]
        return rows

    def ask_then_queue(
        self,
        request: HttpRequest,
        eligible: list[Any],
        *,
        page: Callable[[list[Any]], HttpResponse],
        queue: Callable[[list[Any]], list[JobRun]],
        detail: str,
        label: Callable[[JobRun], str] = lambda run: "",
    ) -> HttpResponse | None:
        """The confirmation `page`, then (answered yes) `queue`; nothing eligible: nothing."""
        if not eligible:
            return None
        if not self.confirmed(request):
            return page(eligible)
        return self.report_runs(request, queue(eligible), detail=detail, label=label)

    @staticmethod
    def confirmed(request: HttpRequest) -> bool:
        """The confirmation page was answered "yes"."""
        return request.POST.get("post") == "yes"

    def queue_job(
        self,
        request: HttpRequest,
        name: str,
        kwargs: dict[str, Any],
        *,
        parent: JobRun | None = None,
    ) -> JobRun:
        """Queue one run of `name` as this user (checked again, with these arguments: the
        action list may be stale, and an argument may need more, e.g. force_reimport)."""
        if not can_run_job(request.user, name, kwargs):
            raise PermissionDenied
        return enqueue_job(
            name,
            kwargs=kwargs,
            trigger=JobRun.Trigger.ADMIN,
            triggered_by=actor(request),
            parent=parent,
        )

    def report_runs(
        self,
        request: HttpRequest,
        runs: Sequence[JobRun],
        *,
        detail: str,
        label: Callable[[JobRun], str] = lambda run: "",
    ) -> HttpResponse | None:
        """One run: land on its page (when the user may see it). Else a message linking each."""
        job = runs[0].job
        if len(runs) == 1 and request.user.has_perm("jobs.view_jobrun"):
            self.message_user(request, f"Queued {job} as run #{runs[0].pk} {detail}.")  # type: ignore[attr-defined]
            return HttpResponseRedirect(run_url(runs[0]))
        links = format_html_join(
            ", ", '<a href="{}">#{}{}</a>', ((run_url(r), r.pk, label(r)) for r in runs)
        )
        self.message_user(request, format_html("Queued {} as run {} {}.", job, links, detail))  # type: ignore[attr-defined]
        return None

    def confirm_chosen(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        chosen: list[Any],
        row: Callable[[Any], tuple[str, str, str]],
        **context: Any,
    ) -> TemplateResponse:
        """The confirmation page for `chosen`, the selected objects the action applies to:
        `row(obj)` (url, label, what happens to it) for the first CONFIRM_MAX_ROWS, the rest
        counted, and the other selected objects counted as skipped."""
        listed = chosen[:CONFIRM_MAX_ROWS]
        if len(listed) < len(chosen):
            context["more"] = len(chosen) - len(listed)
        return self.confirmation_page(
            request,
            rows=[row(obj) for obj in listed],
            skipped=queryset.count() - len(chosen),
            selected=[obj.pk for obj in chosen],
            **context,
        )

    def confirmation_page(
        self,
        request: HttpRequest,
        *,
        title: str,
        intro: str,
        submit: str,
        action: str = "",
        rows: Iterable[tuple[str, str, str]] = (),
        selected: Iterable[Any] = (),
        **context: Any,
    ) -> TemplateResponse:
        """The one "are you sure?" page; "yes" posts `action` again with post=yes (without
        `action`: a bare POST to the same URL). More context the template reads: `summary`,
        `more`, `skipped`/`skipped_note`, `pending`/`pending_note`, `submit_id`, `back_url`."""
        opts = self.model._meta  # type: ignore[attr-defined]
        across = request.POST.get("select_across") == "1"
        return TemplateResponse(
            request,
            "admin/jobs/action_confirmation.html",
            {
                **self.admin_site.each_context(request),  # type: ignore[attr-defined]
                "opts": opts,
                "title": title,
                "intro": intro,
                "rows": list(rows),
                "selected": (
                    request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) if across else selected
                ),
                "select_across": across,
                "action": action,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "submit": submit,
                "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
                **context,
            },
        )
