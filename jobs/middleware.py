"""Request guards that hold for every URL of the project."""

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse


class RefuseUnstorablePath:
    """A path carrying a NUL character names nothing: 404 before any view looks it up.

    PostgreSQL text cannot hold NUL, so an object id such as `/admin/<app>/<model>/%00/change/`
    or `/admin/r/9/%00/` made the lookup itself fail (a 500) in views that are not ours
    (the admin's change, history and delete pages, the content-type shortcut). No URL of
    this project has a NUL in it, so it is refused once, here, for all of them. (A NUL
    in a query string is the list pages' business: jobs.admin.lookups.)
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            raise Http404("no such page")
        return self.get_response(request)
