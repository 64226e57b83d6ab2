"""/health/ (JSON an operator or a load balancer can act on) and /metrics (Prometheus)."""

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from jobs.health.checks import health_report, run_checks, takes_traffic
from jobs.health.metrics import JobsCollector
from jobs.outbox.alerts import watch_from_web

logger = logging.getLogger("jobs.health")


@require_safe
def health_view(request: HttpRequest) -> JsonResponse:
    """Status and one state per check for anyone; the reasons for staff (and the logs).
    Also the alert watchdog's web share: the load balancer polls here with every cluster down.
    HEAD answers the same status: some load balancers' checks send HEAD."""
    checks = run_checks()
    if checks[0].ok and watch_from_web():
        for check in checks:
            if not check.ok:
                logger.warning("health: %s", check.line())
    body = health_report(checks, private=_may_read_details(request))
    return JsonResponse(body, status=200 if takes_traffic(checks) else 503)


#: Who may read the dashboard reads the reasons, ids and counts here too.
DETAILS_PERMISSION = "jobs.view_jobrun"


def _may_read_details(request: HttpRequest) -> bool:
    """Reasons, ids and exception text are for staff who may view job runs: a staff login
    alone opens nothing (with the database down a session cannot be read: no one then)."""
    try:
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm(DETAILS_PERMISSION))
    except Exception:
        return False


def _may_scrape(request: HttpRequest) -> bool:
    """A session of staff who may view job runs, or `Authorization: Bearer <METRICS_TOKEN>`;
    anyone when neither PRODUCTION nor METRICS_TOKEN is set (a developer's machine)."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token and not getattr(settings, "PRODUCTION", False):
        return True
    if _may_read_details(request):
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; a fresh registry per scrape so only our collector is read."""
    if not _may_scrape(request):
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
