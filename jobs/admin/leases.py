"""Leases in the admin: read-only (deleting a live run's lease would let a second copy of
the job start), with "release" for a lease whose holder is gone (jobs.runs.lifecycle)."""

import logging

from django.contrib import admin, messages
from django.http import HttpRequest

from jobs.admin.actions import JobActionsMixin, actor
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.readonly import ReadOnlyMixin
from jobs.models import Lease
from jobs.runs.lifecycle import judge, release_dead_leases

logger = logging.getLogger("jobs")


@admin.register(Lease)
class LeaseAdmin(ReadOnlyMixin, JobActionsMixin, DeclaredLookupsOnly, admin.ModelAdmin):
    list_display = ("key", "owner", "acquired_at", "expires_at", "holder")
    readonly_fields = ("key", "owner", "acquired_at", "expires_at", "holder")
    search_fields = ("key", "owner")
    actions = ["release"]

    @admin.display(description="holder")
    def holder(self, lease: Lease) -> str:
        verdict = judge(lease)
        return f"{'alive' if verdict.alive else 'gone'}: {verdict.detail}"

    @admin.action(
        description="Release selected leases (only if the holder is gone)", permissions=["run"]
    )
    def release(self, request: HttpRequest, queryset) -> None:
        released, refused = release_dead_leases(list(queryset))
        who = actor(request)
        for key in released:
            logger.warning("lease %s released by hand by %s", key, who)
        if released:
            self.message_user(request, f"Released {len(released)} lease(s): {', '.join(released)}.")
        if refused:
            self.message_user(
                request,
                f"Refused {len(refused)} lease(s) whose holder is alive: {'; '.join(refused)}.",
                messages.WARNING,
            )
