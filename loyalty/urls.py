"""URLs of the loyalty app: Apple's PassKit web service and the staff wallet status page."""

from django.urls import path

from loyalty.views import passkit
from loyalty.views.wallet_status import wallet_status_view

urlpatterns = [
    path(
        "passkit/v1/devices/<str:device>/registrations/<str:pass_type>/<str:serial>",
        passkit.registration_view,
        name="passkit-registration",
    ),
    path(
        "passkit/v1/devices/<str:device>/registrations/<str:pass_type>",
        passkit.updated_passes_view,
        name="passkit-updated-passes",
    ),
    path(
        "passkit/v1/passes/<str:pass_type>/<str:serial>",
        passkit.latest_pass_view,
        name="passkit-latest-pass",
    ),
    path("passkit/v1/log", passkit.log_view, name="passkit-log"),
    path("wallet-status/", wallet_status_view, name="wallet-status"),
]
