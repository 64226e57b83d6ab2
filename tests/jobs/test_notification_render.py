"""Notification rendering: fast path equals the engine; anything fancy falls back to it."""

import pytest

from jobs.services.notification_render import NotificationRenderer


@pytest.fixture
def templates(settings, tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    engines = [dict(e) for e in settings.TEMPLATES]
    for engine in engines:
        engine["DIRS"] = [tmp_path, *engine.get("DIRS", [])]
    settings.TEMPLATES = engines

    def write(name: str, text: str) -> str:
        (folder / name).write_text(text)
        return f"t/{name}"

    return write


def test_plain_variables__rendered_unescaped_with_numbers_as_text(templates):
    name = templates("plain.txt", "Hi {{ name }}, {{ points }} points at {{ shop }}.")
    text = NotificationRenderer().render(
        name, {"name": "O'Brien <x>", "points": 1234567, "shop": "Tom & Jerry"}
    )
    assert text == "Hi O'Brien <x>, 1234567 points at Tom & Jerry."


def test_filters_and_tags__fall_back_to_the_engine(templates):
    name = templates(
        "fancy.txt",
        "{{ shop|upper }}: {% if points == 1 %}one point{% else %}{{ points }} points{% endif %}",
    )
    assert NotificationRenderer().render(name, {"shop": "a&b", "points": 3}) == "A&B: 3 points"


def test_missing_variable__rendered_like_the_engine(templates):
    name = templates("missing.txt", "[{{ absent }}]")
    assert NotificationRenderer().render(name, {}) == "[]"
