"""Rendering of notification templates: plain text, each template compiled once per batch.

Notification templates are plain text with `{{ name }}` variables; rendering them with
the full engine costs more than the SQL of a 200,000-card expiration
(bench/expire_points.py). So each template is split once into text and variables and
filled per row with the engine's own value rendering; a template that uses anything
else (filters, tags, dotted lookups) is rendered by the engine. Both paths give the
same text (tests/jobs/test_notification_render.py). The `notifications` template
engine has autoescape off: these are emails and SMS, not HTML.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.template import Context, engines
from django.template.base import TextNode, Variable, VariableNode, render_value_in_context

_Part = tuple[str, str | None]  # (text, None) or ("", context key)


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

    def render(self, template_name: str, context: dict[str, Any]) -> str:
        if template_name not in self._templates:
            template = self._engine.get_template(template_name)
            self._templates[template_name] = (template, _compile(template))
        template, compiled = self._templates[template_name]
        text = compiled.render(context) if compiled is not None else None
        return template.render(context) if text is None else text
