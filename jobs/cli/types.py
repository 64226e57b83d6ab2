"""What operators type after `manage.py` that is not a job's argument: refused in one line.

A job command's options are the job's arguments, read and checked by the job
(jobs.arguments). These serve the rest: the dev servers' options (argparse types) and
commands that look a row up by name or id. Python's `int()` and `float()` accept more
than an operator means: `int("٣")` is 3 (any Unicode decimal digit), `int(" 3_0 ")` is
30, `"²".isdigit()` is true while `int("²")` raises, and `float("nan")` passes every
`< 0` check. These accept only what the help says; argparse turns a refusal into its
usage plus one `error:` line, exit 2.
"""

import argparse
import math

#: The largest id a BigAutoField holds.
MAX_OBJECT_ID = 2**63 - 1


def ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def object_id(text: str) -> int:
    """A database id: ASCII digits only, 1 to 2**63-1."""
    if not ascii_digits(text) or len(text) > 19 or not 1 <= int(text) <= MAX_OBJECT_ID:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (digits 0-9, at least 1)")
    return int(text)


def port_number(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    if not ascii_digits(text) or len(text) > 5 or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def non_negative_int(text: str) -> int:
    """A count: ASCII digits only (at most 18 of them)."""
    if not ascii_digits(text) or len(text) > 18:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


#: Ceiling of `non_negative_float` (a delay of 11 days; `time.sleep(1e300)` overflows).
MAX_FLOAT = 1_000_000.0


def non_negative_float(text: str) -> float:
    """A number from 0 to 1,000,000 (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not text.isascii() or not 0 <= value <= MAX_FLOAT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to {MAX_FLOAT:,.0f}")
    return value
