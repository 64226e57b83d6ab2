"""Admin list lookups: only what the page offers as a filter, never a secret column.

Django's `ModelAdmin.lookup_allowed` lets any query-string lookup on the model's own
columns through (`?account_key__startswith=a`), so every list page is an oracle for
whatever it does not display: a staff user guesses a secret one character at a time
from the row count. `DeclaredLookupsOnly` allows exactly the parameters the declared
`list_filter` and `date_hierarchy` put in a URL, and none that touch a name in
`secret_fields`. Search (`?q=`) is not a lookup and goes through `search_fields`.

A refused lookup is Django's `DisallowedModelAdminLookup`: an HTTP 400 that says
nothing about the rows (logged on `django.security.DisallowedModelAdminLookup`).
"""

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.widgets import url_params_from_lookup_dict
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

#: What Django's field list filters put after the field path in the query string:
#: AllValues (the path itself), Boolean/Choices (exact, isnull), Date (gte, lt, isnull),
#: Empty (isempty). A relation's filter uses `<path>__<target field>__exact`.
FIELD_FILTER_SUFFIXES = ("", "exact", "isnull", "gte", "lt", "isempty")
#: What the date hierarchy drill-down puts after its field.
DATE_HIERARCHY_SUFFIXES = ("year", "month", "day")


def _with_suffix(path: str, suffix: str) -> str:
    return f"{path}{LOOKUP_SEP}{suffix}" if suffix else path


class DeclaredLookupsOnly:
    """A ModelAdmin mixin (put it first): list lookups only from the declared filters.

    A custom `FieldListFilter` whose parameters differ from Django's names them in
    `extra_lookups`.
    """

    #: Column names no lookup may touch, whatever the filters say (e.g. an API key).
    secret_fields: tuple[str, ...] = ()
    #: Further query-string lookups this page accepts.
    extra_lookups: tuple[str, ...] = ()

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if set(lookup.split(LOOKUP_SEP)) & set(self.secret_fields):
            return False
        if self._raw_id_popup_lookup(lookup, value):
            return True
        return lookup in self.declared_lookups(request)

    def declared_lookups(self, request: HttpRequest | None) -> set[str]:
        """Every query-string parameter the declared list filters and date hierarchy use."""
        model_admin: admin.ModelAdmin = self  # type: ignore[assignment]
        allowed = set(self.extra_lookups)
        filters = model_admin.get_list_filter(request) if request is not None else self.list_filter
        for item in filters:
            if isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
                allowed.add(item.parameter_name)
                continue
            path = item[0] if isinstance(item, (list, tuple)) else item
            if not isinstance(path, str):
                continue  # a Field instance: Django builds its path itself; name it in extra_lookups
            allowed.update(_with_suffix(path, s) for s in FIELD_FILTER_SUFFIXES)
            field = get_fields_from_path(model_admin.model, path)[-1]
            if field.is_relation and getattr(field, "target_field", None) is not None:
                allowed.add(f"{path}{LOOKUP_SEP}{field.target_field.name}{LOOKUP_SEP}exact")
        if self.date_hierarchy:
            allowed.update(_with_suffix(self.date_hierarchy, s) for s in DATE_HIERARCHY_SUFFIXES)
        return allowed

    def _raw_id_popup_lookup(self, lookup: str, value: str) -> bool:
        """Django's exception, kept: a raw-id popup narrowed by a ForeignKey's
        `limit_choices_to` (fixed in code, not typed by the user)."""
        for fk_lookup in self.model._meta.related_fkey_lookups:
            if callable(fk_lookup):
                fk_lookup = fk_lookup()
            if (lookup, value) in url_params_from_lookup_dict(fk_lookup).items():
                return True
        return False
