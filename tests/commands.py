"""Running a management command in-process in a test, as an operator would, with its output."""

from io import StringIO

from django.core.management import call_command


def run_command(*args: str) -> str:
    """What the command printed on stdout; CommandError (and its returncode) propagates."""
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
