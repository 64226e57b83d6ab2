from django.contrib import admin
from django.urls import include, path

from jobs.health.views import health_view, metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", health_view, name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("loyalty.urls")),
    path("webhooks/", include("commerce.urls")),
]
