"""The task the queue benchmark pushes through django-q2: does nothing, returns nothing."""


def noop() -> None:
    return None
