"""django-q2's own admin pages, read-only: schedules and tasks come from the job registry.

django-q2 registers editable Schedule, queue and task admins with a "Resubmit" action
that queues any stored function again. Here they become views: a schedule is a code
change (jobs.queue.schedules), a failed run is retried from Job runs (with the
job's permissions), and the cluster refuses foreign functions anyway
(jobs.queue.guard). The one write left: deleting a Schedule that is not ours (the
remedy when /health/ reports a refused task), never one the registry owns.
"""

import django_q.admin as q_admin  # registers django-q2's admins first; we replace them
from django.contrib import admin
from django.http import HttpRequest
from django_q.models import Failure, OrmQ, Schedule, Success

from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.admin.readonly import ReadOnlyMixin
from jobs.queue.guard import allowed_funcs


class ScheduleAdmin(ReadOnlyMixin, DeclaredLookupsOnly, q_admin.ScheduleAdmin):
    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        """Only a foreign schedule (one the cluster refuses), one at a time."""
        if obj is None or obj.func in allowed_funcs():
            return False
        return request.user.has_perm("django_q.delete_schedule")


class SuccessAdmin(ReadOnlyMixin, DeclaredLookupsOnly, q_admin.TaskAdmin):
    pass


class FailureAdmin(ReadOnlyMixin, DeclaredLookupsOnly, q_admin.FailAdmin):
    pass


class QueueAdmin(ReadOnlyMixin, DeclaredLookupsOnly, q_admin.QueueAdmin):
    pass


def replace_queue_admins(site: admin.AdminSite = admin.site) -> None:
    for model, model_admin in (
        (Schedule, ScheduleAdmin),
        (Success, SuccessAdmin),
        (Failure, FailureAdmin),
        (OrmQ, QueueAdmin),
    ):
        if site.is_registered(model):
            site.unregister(model)
            site.register(model, model_admin)


replace_queue_admins()
