"""Admin change lists that answer a hand-made query string with the plain list, not a 500.

`?job=%00` (PostgreSQL refuses NUL in text), `?created_at__year=99999999999` (past
`datetime`'s range) and lookups on columns the page does not offer as a filter all
reached the database or Python's date arithmetic. `GuardedChangeListMixin` refuses
them first: a bad value becomes Django's "incorrect lookup parameters" path (a redirect
to the unfiltered list), a lookup on a column that is not offered as a filter is a 400
(so a secret column cannot be probed with `?secret__startswith=`). Any app's ModelAdmin
can put the mixin first in its bases.
"""

from collections.abc import Mapping
from typing import Any

from django.contrib.admin import SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.widgets import url_params_from_lookup_dict
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

#: Date parts a query string may carry, with the values Python's datetime accepts (the
#: year stops at 9998 so that "the next year" of a date hierarchy still exists).
DATE_PARTS = {"year": (1, 9998), "month": (1, 12), "day": (1, 31)}
MAX_VALUE_LENGTH = 1000


def query_problem(params: Mapping[str, Any]) -> str | None:
    """Why these change-list parameters cannot be used, or None."""
    for key in params:
        values = params.getlist(key) if hasattr(params, "getlist") else [params[key]]
        for value in values:
            if "\x00" in key or "\x00" in value:
                return f"a NUL character in {key!r}"
            if len(value) > MAX_VALUE_LENGTH:
                return f"{key!r} is longer than {MAX_VALUE_LENGTH} characters"
            part = key.rsplit(LOOKUP_SEP, 1)[-1]
            if part in DATE_PARTS and LOOKUP_SEP in key:
                low, high = DATE_PARTS[part]
                if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
                    return f"{key}={value[:20]!r} is not a {part} from {low} to {high}"
    return None


class GuardedChangeListMixin:
    """Put first in a ModelAdmin's bases; see the module docstring."""

    def get_changelist_instance(self, request: HttpRequest):
        problem = query_problem(request.GET)
        if problem:
            raise IncorrectLookupParameters(problem)
        return super().get_changelist_instance(request)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """Only lookups on the fields the page offers as filters (or its date hierarchy)."""
        if lookup in self.simple_filter_parameters(request):
            return True  # a SimpleListFilter's own parameter; its queryset() reads it
        if lookup.split(LOOKUP_SEP, 1)[0] not in self.offered_filter_fields(request):
            return self._raw_id_popup_lookup(lookup, value)
        return super().lookup_allowed(lookup, value, request)

    def simple_filter_parameters(self, request: HttpRequest | None) -> set[str]:
        entries = self.get_list_filter(request) if request is not None else self.list_filter
        return {
            entry.parameter_name
            for entry in entries
            if isinstance(entry, type) and issubclass(entry, SimpleListFilter)
        }

    def offered_filter_fields(self, request: HttpRequest | None) -> set[str]:
        entries = self.get_list_filter(request) if request is not None else self.list_filter
        fields = set()
        for entry in entries:
            if isinstance(entry, type) and issubclass(entry, SimpleListFilter):
                continue  # its parameter alone is allowed (simple_filter_parameters)
            name = entry[0] if isinstance(entry, tuple | list) else entry
            fields.add(str(name).split(LOOKUP_SEP, 1)[0])
        if self.date_hierarchy:
            fields.add(self.date_hierarchy.split(LOOKUP_SEP, 1)[0])
        return fields

    def _raw_id_popup_lookup(self, lookup: str, value: str) -> bool:
        """A raw-id popup's limit_choices_to lookup (Django allows those, so do we)."""
        for fk_lookup in self.model._meta.related_fkey_lookups:
            if callable(fk_lookup):
                fk_lookup = fk_lookup()
            if (lookup, value) in url_params_from_lookup_dict(fk_lookup).items():
                return True
        return False
