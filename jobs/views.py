"""/health/: JSON an operator (or a load balancer) can act on; 503 when unhealthy."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

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
