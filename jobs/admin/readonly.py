"""Admin pages that only show what the system writes (history, ledgers, tokens, sync state)."""

from django.http import HttpRequest


class ReadOnlyMixin:
    """No add, change or delete from the admin, for a ModelAdmin or an inline.

    Without the change permission Django renders every field read-only. No actions but the
    admin's own (django-q2's "Resubmit" goes); an action that changes rows through a service
    (requeue, dismiss) declares `permissions=["update"]`: the model's change permission.
    """

    actions = None

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_update_permission(self, request: HttpRequest) -> bool:
        return super().has_change_permission(request)  # type: ignore[misc]
