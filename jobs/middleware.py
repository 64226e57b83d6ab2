"""Request guards that hold for every URL of the project."""

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse


class RefuseUnstorablePath:
    """A path carrying a NUL character names nothing: 404 before any view looks it up
    (PostgreSQL text cannot hold NUL, and the admin's own pages would fail with a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            raise Http404("no such page")
        return self.get_response(request)
