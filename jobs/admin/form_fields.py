"""Form fields for what staff type into the admin, refused as form errors, never a 500.

Django's `forms.JSONField` turns only `JSONDecodeError` into a form error, but Python's
parser raises other errors for input it cannot hold: a 5,000-digit integer (`int()`'s
digit limit), nesting deeper than the recursion limit, and NaN or Infinity that
PostgreSQL's jsonb refuses at save. Use it with
`formfield_overrides = {models.JSONField: {"form_class": StrictJSONField}}`.
"""

import json
import math
from typing import Any

from django import forms


class _StrictDecoder(json.JSONDecoder):
    """A JSON decoder whose every refusal is a JSONDecodeError (what the form catches)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(parse_constant=_no_constant, parse_float=_finite_float, **kwargs)

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(s, *args, **kwargs)
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError) as exc:
            raise json.JSONDecodeError(type(exc).__name__, s, 0) from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


class StrictJSONField(forms.JSONField):
    """`forms.JSONField` refusing huge integers, deep nesting, NaN and Infinity."""

    def __init__(self, *, decoder: type[json.JSONDecoder] | None = None, **kwargs: Any) -> None:
        super().__init__(decoder=_StrictDecoder, **kwargs)
