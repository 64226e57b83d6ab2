"""A job's arguments are checked once, before a run exists, by `check_job_arguments`, at every
entry point (docs/jobs-core.md): a bad value is refused in one line naming the argument.
`from_text` reads what an operator typed by the annotations; argparse only parses."""

import contextlib
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone

from jobs.exceptions import BadJobArguments
from jobs.registry import JobSpec, get_job

BIGINT_MAX = 2**63 - 1
MAX_TEXT = 10_000
MAX_ITEMS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class Range:
    """Inclusive bounds of a number argument: `Annotated[int, Range(min=1)]`."""

    min: float | None = None
    max: float | None = None

    def problem(self, value: float) -> str | None:
        if self.min is not None and value < self.min:
            return f"must be >= {self.min}"
        if self.max is not None and value > self.max:
            return f"must be <= {self.max}"
        return None


#: How far ahead a date an operator types may be: one year (and a leap day).
DATE_HORIZON_DAYS = 366


@dataclass(frozen=True, kw_only=True)
class IsoDate:
    """A date passed as text: `Annotated[str, IsoDate()]`, YYYY-MM-DD (`with_time`: an ISO
    date-time with a zone), from `earliest` to `latest_days_ahead` from today (None: up to
    9998-12-31, where adding days still works): bounds on what the job can walk."""

    earliest: date = date(2000, 1, 1)
    latest_days_ahead: int | None = DATE_HORIZON_DAYS
    with_time: bool = False

    def problem(self, value: str) -> str | None:
        try:
            if self.with_time:
                moment = datetime.fromisoformat(value)
                day = moment.date() if moment.tzinfo is not None else None
            else:
                day = date.fromisoformat(value) if len(value) == 10 else None
        except ValueError:
            day = None
        if day is None:
            return (
                "must be a date-time with a zone (2026-12-01T00:00:00+00:00)"
                if self.with_time
                else "must be a date (YYYY-MM-DD)"
            )
        latest = date(9998, 12, 31)
        if self.latest_days_ahead is not None:
            latest = min(latest, timezone.now().date() + timedelta(days=self.latest_days_ahead))
        if not self.earliest <= day <= latest:
            return f"must be from {self.earliest} to {latest}"
        return None


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def check_types_and_bounds(name: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Raise BadJobArguments naming the first argument that would not bind or is out of range."""
    params = inspect.signature(func).parameters
    # Our own words, not inspect's: its TypeError text differs between Python versions.
    for param in params.values():
        if param.default is param.empty and param.kind in _NAMED and param.name not in kwargs:
            raise BadJobArguments(f"{name}: missing a required argument: '{param.name}'")
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params or params[key].kind not in _NAMED:
                raise BadJobArguments(f"{name}: got an unexpected keyword argument '{key}'")
    hints = typing.get_type_hints(func, include_extras=True)
    for key, value in kwargs.items():
        if key in hints and (problem := _problem(value, hints[key])):
            raise BadJobArguments(f"{name}: argument {key}={_short(value)} {problem}")


def _problem(value: Any, annotation: Any) -> str | None:
    """What is wrong with `value` for `annotation`, or None."""
    bounds: list[Range | IsoDate] = []
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        bounds = [e for e in extras if isinstance(e, Range | IsoDate)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        problems = [_problem(value, option) for option in typing.get_args(annotation)]
        if all(problems):
            fitting = [p for p in problems if not p.startswith("is not")]
            return fitting[0] if fitting else f"is not {_type_name(annotation)}"
        return None
    if type_problem := _type_problem(value, annotation, origin):
        return type_problem
    for bound in bounds:
        applies = isinstance(value, int | float if isinstance(bound, Range) else str)
        if applies and (problem := bound.problem(value)):
            return problem
    return None


def _type_problem(value: Any, annotation: Any, origin: Any) -> str | None:
    if annotation is Any:
        return None
    expected = origin or annotation
    if not isinstance(expected, type):
        return None  # an annotation we cannot check (a Literal, a TypeVar...)
    if expected is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return "is not a number"
        if not math.isfinite(value):
            return "is not finite"
        return None if abs(value) <= BIGINT_MAX else "is out of range"
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        return "is not int"
    if not isinstance(value, expected):
        return f"is not {_type_name(annotation)}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > BIGINT_MAX:
        return "is out of range (64-bit integer)"
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"is longer than {MAX_TEXT} characters"
    if isinstance(value, list | tuple | dict) and len(value) > MAX_ITEMS:
        return f"has more than {MAX_ITEMS} items"
    (item_type, *_) = typing.get_args(annotation) or (None,)
    if isinstance(value, list) and item_type is not None:
        for item in value:
            if problem := _problem(item, item_type):
                return f"has an item {_short(item)} that {problem}"
    return None


def _type_name(annotation: Any) -> str:
    """`int | None` for `Annotated[int, Range(...)] | None` too."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(option) for option in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if origin is None and getattr(annotation, "__name__", None):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit str limit
        return "<a number too long to show>"
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def check_job_arguments(name: str, kwargs: dict[str, Any], *, validate: bool = True) -> JobSpec:
    """The one check before a run of job `name` exists: types, bounds and (unless
    `validate` is False: an automatic retry) the job's `validate`. Raises UnknownJob or
    BadJobArguments (one line naming the argument); returns the job's spec."""
    spec = get_job(name)
    check_types_and_bounds(name, spec.func, kwargs)
    if validate and spec.validate is not None:
        spec.validate(kwargs)
    return spec


#: A number as an operator means it: ASCII digits, an optional sign, fraction and exponent.
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def from_text(name: str, func: Callable[..., Any], texts: dict[str, Any]) -> dict[str, Any]:
    """`texts` (what an operator typed) read by the job's annotations: ints from ASCII
    digits only (`int("٣")` is 3), floats, `true`/`false`, `null`, a JSON list. Text that
    reads as none of those is left for `check_job_arguments` to refuse by name."""
    hints = typing.get_type_hints(func, include_extras=True)
    return {key: _read(name, key, value, hints.get(key, Any)) for key, value in texts.items()}


def _read(name: str, key: str, value: Any, annotation: Any) -> Any:
    kinds = _kinds(annotation)
    if isinstance(value, list) and list in kinds:
        item = kinds[list]
        return [_read(name, key, v, item) if isinstance(v, str) else v for v in value]
    if not isinstance(value, str) or str in kinds or Any in kinds:
        return value
    if type(None) in kinds and value == "null":
        return None
    if bool in kinds and value in ("true", "false"):
        return value == "true"
    if (int in kinds or float in kinds) and _INT.fullmatch(value):
        if len(value) > 4000:  # int() refuses strings past its 4,300-digit limit
            raise BadJobArguments(
                f"{name}: argument {key}: a number of {len(value)} digits is out of range"
            )
        return int(value)
    if float in kinds and len(value) <= 400 and _FLOAT.fullmatch(value):
        return float(value)
    if list in kinds and value.startswith("["):
        with contextlib.suppress(ValueError, RecursionError):
            return json.loads(value, parse_constant=lambda word: word)
    return value


def _kinds(annotation: Any) -> dict[Any, Any]:
    """The base types an annotation admits (Annotated and unions unwrapped); a list maps
    to its item annotation, every other type to itself."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return {k: v for option in typing.get_args(annotation) for k, v in _kinds(option).items()}
    if origin is list:
        (item, *_) = typing.get_args(annotation) or (Any,)
        return {list: item}
    return {annotation: annotation}
