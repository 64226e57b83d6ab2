"""JSON typed into the admin, refused as a form error, never a 500: Django's `forms.JSONField`
catches only `JSONDecodeError`, and Python's parser raises others (a 5,000-digit integer,
nesting past the recursion limit) or takes NaN and Infinity, which PostgreSQL's jsonb refuses."""

import json
import math
from typing import Any

from django import forms


class _StrictDecoder(json.JSONDecoder):
    """A JSON decoder whose every refusal is a JSONDecodeError (what the form catches)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(parse_constant=_finite_float, parse_float=_finite_float, **kwargs)

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(s, *args, **kwargs)
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError) as exc:
            raise json.JSONDecodeError(type(exc).__name__, s, 0) from None


def _finite_float(text: str) -> float:
    """A JSON number; NaN, Infinity and -Infinity (also what `parse_constant` gets) refused."""
    if not math.isfinite(value := float(text)):
        raise ValueError(f"{text[:20]} is out of range")
    return value


class StrictJSONField(forms.JSONField):
    """Use it with `formfield_overrides = {models.JSONField: {"form_class": StrictJSONField}}`."""

    def __init__(self, *, decoder: type[json.JSONDecoder] | None = None, **kwargs: Any) -> None:
        super().__init__(decoder=_StrictDecoder, **kwargs)
