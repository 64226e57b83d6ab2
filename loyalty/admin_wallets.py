"""Read-only wallet sync state on the card page: which wallet is behind, and its last error."""

from django.contrib import admin
from django.http import HttpRequest

from jobs.admin.readonly import ReadOnlyMixin
from loyalty.models import WalletSyncState


class WalletSyncStateInline(ReadOnlyMixin, admin.TabularInline):
    """Written only by the sync (what each wallet confirmed); nobody edits it here."""

    model = WalletSyncState
    extra = 0
    fields = ("wallet", "synced_version", "attempted_at", "synced_at", "failures", "last_error")
    readonly_fields = fields
    verbose_name = "wallet sync state"

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        """Whoever may see the card sees what its wallets confirmed (no secret in it)."""
        return request.user.has_perm("loyalty.view_loyaltycard") or request.user.has_perm(
            "loyalty.change_loyaltycard"
        )
