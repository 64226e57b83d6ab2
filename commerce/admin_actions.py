"""Shared pieces of the commerce admin: read-only pages, job actions, confirmation pages."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from jobs.admin import actor
from jobs.admin_lookups import DeclaredLookupsOnly
from jobs.models import JobRun
from jobs.permissions import can_run_job
from jobs.runner import enqueue_job

CONFIRM_TEMPLATE = "admin/jobs/action_confirmation.html"  # shared by the apps
CONFIRM_MAX_ROWS = 100


class ReadOnlyAdmin(DeclaredLookupsOnly, admin.ModelAdmin):
    """History and records made by the system: viewable, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class RunJobMixin:
    """`run_and_change`: what `run_job_name` declares (jobs.run_job plus the model's
    change permission, in its registry entry), the same check as Run now and Retry."""

    run_job_name: str = ""

    def has_run_and_change_permission(self, request: HttpRequest) -> bool:
        return can_run_job(request.user, self.run_job_name)

    def queue_and_report(
        self, request: HttpRequest, name: str, kwargs: dict[str, Any], detail: str
    ) -> HttpResponse | None:
        run = enqueue_job(
            name, kwargs=kwargs, trigger=JobRun.Trigger.ADMIN, triggered_by=actor(request)
        )
        url = reverse("admin:jobs_jobrun_change", args=[run.pk])
        if request.user.has_perm("jobs.view_jobrun"):
            self.message_user(request, f"Queued {name} as run #{run.pk} {detail}.")
            return HttpResponseRedirect(url)
        self.message_user(
            request,
            format_html('Queued {} as run <a href="{}">#{}</a> {}.', name, url, run.pk, detail),
        )
        return None


def confirmation(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    chosen: list,
    *,
    action: str,
    title: str,
    intro: str,
    rows: list[tuple[str, str, str]],
    skipped_note: str,
    submit: str,
) -> TemplateResponse:
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "intro": intro,
        "rows": rows[:CONFIRM_MAX_ROWS],
        "more": max(0, len(rows) - CONFIRM_MAX_ROWS),
        "skipped": queryset.count() - len(chosen),
        "skipped_note": skipped_note,
        "selected": [obj.pk for obj in chosen],
        "action": action,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "submit": submit,
        "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
    }
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)
