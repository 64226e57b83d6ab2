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

admin.site.unregister([Schedule, Success, Failure, OrmQ])


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyMixin, DeclaredLookupsOnly, q_admin.ScheduleAdmin):
    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        """Only a foreign schedule (one the cluster refuses), one at a time."""
        if obj is None or obj.func in allowed_funcs():
            return False
        return request.user.has_perm("django_q.delete_schedule")


for model, pages in (
    (Success, q_admin.TaskAdmin),
    (Failure, q_admin.FailAdmin),
    (OrmQ, q_admin.QueueAdmin),
):
    read_only = type(pages.__name__, (ReadOnlyMixin, DeclaredLookupsOnly, pages), {})
    admin.site.register(model, read_only)
