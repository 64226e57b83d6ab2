"""Admin pages that only show what the system writes (history, ledgers, tokens, sync state)."""

from django.http import HttpRequest


class ReadOnlyMixin:
    """No add, change or delete from the admin; for a ModelAdmin or an inline."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
