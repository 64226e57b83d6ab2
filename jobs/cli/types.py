"""What operators type that is not a job's argument (a row named by id): only what the help
says, as `int()` takes any Unicode digit and " 3_0 ". argparse turns a refusal into its usage
and one line, exit 2."""

import argparse


def ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def object_id(text: str) -> int:
    """A database id: ASCII digits only, 1 to 2**63-1 (the largest a BigAutoField holds)."""
    if not ascii_digits(text) or len(text) > 19 or not 1 <= int(text) <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (digits 0-9, at least 1)")
    return int(text)
