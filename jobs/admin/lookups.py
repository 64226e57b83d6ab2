"""Admin list lookups: only what the page offers as a filter, never a secret column (Django
lets `?account_key__startswith=a` through: an oracle). A lookup not offered is Django's 400;
a value the database cannot take is its "invalid filter" notice (`?e=1`), never a 500."""

from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path
from django.core import checks
from django.core.exceptions import BadRequest, ValidationError
from django.db.models import DateField, Field
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest


def _filter_suffixes(field: Field, item: object) -> tuple[str, ...]:
    """What Django's list filter for `field` puts after the field path in a URL."""
    if isinstance(item, (list, tuple)) and issubclass(item[1], admin.EmptyFieldListFilter):
        return ("isempty",)
    if field.is_relation:
        return (f"{field.target_field.name}{LOOKUP_SEP}exact", "isnull")
    if isinstance(field, DateField):  # DateTimeField too: "Past 7 days" etc.
        return ("gte", "lt", "isnull")
    return ("", "exact", "isnull")  # Boolean, choices, all values


#: What the date hierarchy drill-down puts after its field, and the values it can take.
DATE_PART_RANGES = {"year": (1, 9998), "month": (1, 12), "day": (1, 31)}


#: Longest query-string value a list page takes (search text included).
MAX_VALUE_LENGTH = 1000


def _with_suffix(path: str, suffix: str) -> str:
    return f"{path}{LOOKUP_SEP}{suffix}" if suffix else path


class DeclaredLookupsOnly:
    """A ModelAdmin mixin (put it first): list lookups only from the declared filters."""

    #: Column names no lookup may touch, whatever the filters say (e.g. an API key).
    secret_fields: tuple[str, ...] = ()

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Django's checks, plus: a secret column is never listed, searched, filtered,
        sorted or shown read-only (where the admin would print or compare its value)."""
        places = {
            "list_display": self.list_display,
            "list_filter": [f[0] if isinstance(f, (list, tuple)) else f for f in self.list_filter],
            "search_fields": [f.lstrip("^=@") for f in self.search_fields],
            "readonly_fields": self.readonly_fields,
            "sortable_by": self.sortable_by or (),
        }
        return [
            *super().check(**kwargs),
            *(
                checks.Error(
                    f"secret column {name!r} is in {place}",
                    hint="remove it: secrets are never rendered or filterable",
                    obj=type(self),
                    id="jobs.E101",
                )
                for place, names in places.items()
                for name in names
                if isinstance(name, str) and set(name.split(LOOKUP_SEP)) & set(self.secret_fields)
            ),
        ]

    def get_changelist_instance(self, request: HttpRequest):
        """No list for a query string with a NUL (PostgreSQL text cannot hold it) or an
        absurdly long value."""
        for key, values in request.GET.lists():
            for value in [key, *values]:
                if "\x00" in value:
                    raise IncorrectLookupParameters(f"a NUL character in {key!r}")
                if len(value) > MAX_VALUE_LENGTH:
                    raise IncorrectLookupParameters(
                        f"{key!r} is longer than {MAX_VALUE_LENGTH} characters"
                    )
        return super().get_changelist_instance(request)  # type: ignore[misc]

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """The autocomplete URL searches without the list's checks above: the same limits."""
        if "\x00" in search_term or len(search_term) > MAX_VALUE_LENGTH:
            raise BadRequest("search text with a NUL character or too long")
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]

    def response_action(self, request: HttpRequest, queryset):
        """A selected id the primary key cannot hold (a hand-made POST: no checkbox carries
        one) is a 400 before the action filters on it (the database would raise)."""
        pk = self.model._meta.pk  # type: ignore[attr-defined]
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                if "\x00" in value:
                    raise ValidationError("a NUL character")
                pk.to_python(value)
            except ValidationError:
                raise BadRequest("a selected id that is no id") from None
        return super().response_action(request, queryset)  # type: ignore[misc]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Django also allows the lookups of a raw-id popup narrowed by a ForeignKey's
        # `limit_choices_to`; no ForeignKey of ours has one, so none is allowed here.
        if set(lookup.split(LOOKUP_SEP)) & set(self.secret_fields):
            return False
        if lookup not in self.declared_lookups(request):
            return False
        self._check_value(lookup, value)
        return True

    def _check_value(self, lookup: str, value: str) -> None:
        """A date part no filter link offers (datetime() cannot take a year of 99999999999)."""
        path, _, part = lookup.rpartition(LOOKUP_SEP)
        if self.date_hierarchy and path == self.date_hierarchy and part in DATE_PART_RANGES:
            low, high = DATE_PART_RANGES[part]
            text = str(value)
            if not (text.isascii() and text.isdigit() and len(text) <= 4):
                raise IncorrectLookupParameters(f"{lookup}: not a number")
            if not low <= int(text) <= high:
                raise IncorrectLookupParameters(f"{lookup}: out of range")

    def declared_lookups(self, request: HttpRequest | None) -> set[str]:
        """Every query-string parameter the declared list filters and date hierarchy use."""
        model_admin: admin.ModelAdmin = self  # type: ignore[assignment]
        allowed: set[str] = set()
        filters = model_admin.get_list_filter(request) if request is not None else self.list_filter
        for item in filters:
            if isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
                allowed.add(item.parameter_name)
                continue
            path = item[0] if isinstance(item, (list, tuple)) else item
            field = get_fields_from_path(model_admin.model, path)[-1]
            allowed.update(_with_suffix(path, s) for s in _filter_suffixes(field, item))
        if self.date_hierarchy:
            allowed.update(_with_suffix(self.date_hierarchy, s) for s in DATE_PART_RANGES)
        return allowed
