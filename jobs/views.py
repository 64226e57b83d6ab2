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
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "checks": {c.name: c.as_dict() for c in checks},
        "lines": [c.line() for c in checks],
    }
    return JsonResponse(body, status=200 if healthy else 503)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; a fresh registry per scrape so only our collector is read."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
