"""Rendering of notification templates: plain text, each template compiled once per batch.

Notification templates are plain text with `{{ name }}` variables; rendering them with
the full engine costs more than the SQL of a 200,000-card expiration
(bench/expire_points.py). So each template is split once into text and variables and
filled per row with the engine's own value rendering; a template that uses anything
else (filters, tags, dotted lookups) is rendered by the engine. Both paths give the
same text (tests/jobs/test_notification_render.py). The `notifications` template
engine has autoescape off: these are emails and SMS, not HTML.

The same split templates can also be turned into SQL (`sql_expression`): a `concat()`
of the text parts (bind parameters) and the row's columns, so a set-based job can
write its outbox rows in the statement that makes the change, with no round trip of
every row through Python. Only plain-variable templates qualify; callers fall back
to `render` otherwise.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.template import Context, engines
from django.template.base import TextNode, Variable, VariableNode, render_value_in_context

_Part = tuple[str, str | None]  # (text, None) or ("", context key)
#: What a column holds, for `sql_expression`: text renders as is, int as its digits.
ColumnKind = Literal["text", "int"]
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")


@dataclass(frozen=True)
class SqlText:
    """A SQL expression that renders a template for the current row, and its parameters."""

    sql: str
    params: dict[str, Any]


def notification_engine():
    return engines[getattr(settings, "NOTIFICATION_TEMPLATE_ENGINE", "notifications")]


@dataclass(frozen=True)
class _Compiled:
    parts: tuple[_Part, ...]
    #: Renders values as the engine would (localization, autoescape setting).
    context: Context
    #: Whether ints render as str(int) here (no thousand separators): checked, not assumed.
    plain_ints: bool
    #: The context keys the template uses.
    keys: frozenset[str]

    def render(self, values: dict[str, Any]) -> str | None:
        """The rendered text, or None when only the engine can render these values."""
        if not self.keys <= values.keys():
            return None
        out = []
        for text, key in self.parts:
            if key is None:
                out.append(text)
                continue
            value = values[key]
            kind = type(value)
            if kind is str and not self.context.autoescape:
                out.append(value)
            elif kind is int and self.plain_ints:
                out.append(str(value))
            elif callable(value):
                return None
            else:
                out.append(render_value_in_context(value, self.context))
        return "".join(out)

    def sql(
        self,
        *,
        columns: Mapping[str, ColumnKind],
        constants: Mapping[str, Any],
        alias: str,
        param_prefix: str,
    ) -> SqlText | None:
        """`concat()` of text parts and `alias.column`s; None when a value would render
        differently in SQL (escaping on, localized ints, NULL-able or unknown keys)."""
        pieces: list[str] = []
        params: dict[str, Any] = {}

        def literal(text: str) -> None:
            name = f"{param_prefix}_{len(params)}"
            params[name] = text
            pieces.append(f"%({name})s::text")

        for text, key in self.parts:
            if key is None:
                literal(text)
            elif key in columns:
                kind = columns[key]
                if (kind == "text" and self.context.autoescape) or (
                    kind == "int" and not self.plain_ints
                ):
                    return None
                if not _IDENTIFIER.match(key) or not _IDENTIFIER.match(alias):
                    raise ValueError(f"not a plain SQL identifier: {alias}.{key}")
                pieces.append(f'{alias}."{key}"')
            elif key in constants:
                value = constants[key]
                if callable(value):
                    return None
                literal(render_value_in_context(value, self.context))
            else:
                return None
        return SqlText(f"concat({', '.join(pieces)})" if pieces else "''::text", params)


def _compile(template: Any) -> _Compiled | None:
    """Text and plain-variable parts of a template, or None when it needs the engine."""
    inner = getattr(template, "template", None)  # the django.template.Template
    if inner is None:
        return None
    parts: list[_Part] = []
    for node in inner.nodelist:
        if type(node) is TextNode:
            parts.append((node.s, None))
            continue
        if type(node) is not VariableNode:
            return None
        expression = node.filter_expression
        variable = expression.var
        if (
            expression.filters
            or not isinstance(variable, Variable)
            or variable.lookups is None
            or len(variable.lookups) != 1
            or variable.translate
        ):
            return None
        parts.append(("", variable.lookups[0]))
    context = Context(autoescape=inner.engine.autoescape)
    plain_ints = all(
        render_value_in_context(probe, context) == str(probe) for probe in (1234567890, -9876543)
    )
    keys = frozenset(key for _text, key in parts if key is not None)
    return _Compiled(tuple(parts), context, plain_ints, keys)


class NotificationRenderer:
    """Renders notification templates; build one per batch (templates compiled once)."""

    def __init__(self) -> None:
        self._engine = notification_engine()
        self._templates: dict[str, tuple[Any, _Compiled | None]] = {}

    def _get(self, template_name: str) -> tuple[Any, _Compiled | None]:
        if template_name not in self._templates:
            template = self._engine.get_template(template_name)
            self._templates[template_name] = (template, _compile(template))
        return self._templates[template_name]

    def render(self, template_name: str, context: dict[str, Any]) -> str:
        template, compiled = self._get(template_name)
        text = compiled.render(context) if compiled is not None else None
        return template.render(context) if text is None else text

    def sql_expression(
        self,
        template_name: str,
        *,
        columns: Mapping[str, ColumnKind],
        constants: Mapping[str, Any],
        alias: str,
        param_prefix: str,
    ) -> SqlText | None:
        """The template as a SQL expression over `alias`'s columns (one per context key in
        `columns`, never NULL) with `constants` rendered here once; None when only the
        engine can render it (tags, filters, dotted lookups)."""
        _template, compiled = self._get(template_name)
        if compiled is None:
            return None
        return compiled.sql(
            columns=columns, constants=constants, alias=alias, param_prefix=param_prefix
        )
