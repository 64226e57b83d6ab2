"""/health/ (JSON an operator or a load balancer can act on) and /metrics (Prometheus)."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from jobs.metrics import JobsCollector
from jobs.services.health import is_healthy, run_checks


@require_GET
def health_view(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    healthy = is_healthy(checks)
    private = _is_staff(request)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "checks": {c.name: c.as_dict(private=private) for c in checks},
        "lines": [c.line(private=private) for c in checks],
    }
    return JsonResponse(body, status=200 if healthy else 503)


def _is_staff(request: HttpRequest) -> bool:
    """Exception text (database host, broker URL) is for staff only; the logs have it too.

    With the database down a logged-in caller's session cannot be read: not staff then.
    """
    try:
        return bool(request.user.is_active and request.user.is_staff)
    except Exception:
        return False


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; a fresh registry per scrape so only our collector is read."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
