"""django-q2's own admin pages, read-only: schedules and tasks come from the job registry.

Its "Resubmit" would queue any stored function again: a schedule is a code change here
(jobs.queue.schedules) and a failed run is retried from Job runs. The one write left:
deleting a Schedule that is not ours (the remedy when /health/ reports a refused task).
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


for model, model_admin in (
    (Schedule, ScheduleAdmin),
    (Success, SuccessAdmin),
    (Failure, FailureAdmin),
    (OrmQ, QueueAdmin),
):
    if admin.site.is_registered(model):  # OrmQ only with the ORM broker
        admin.site.unregister(model)
        admin.site.register(model, model_admin)
