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


def test_outbox_whitespace__is_what_python_splits_and_strips_on():
    import sys

    from jobs.services.outbox import WHITESPACE

    assert WHITESPACE == "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


def test_sql_expression__only_for_plain_variables_with_known_values(templates):
    plain = templates("plain_sql.txt", "Hi {{ name }}: {{ points }} at {{ shop }}")
    fancy = templates("fancy_sql.txt", "{{ name|upper }}")
    renderer = NotificationRenderer()
    columns = {"name": "text", "points": "int"}

    expression = renderer.sql_expression(
        plain, columns=columns, constants={"shop": "A&B"}, alias="s", param_prefix="p"
    )
    assert expression is not None
    assert expression.sql == 'concat(%(p_0)s::text, s."name", %(p_1)s::text, s."points", ' + (
        "%(p_2)s::text, %(p_3)s::text)"
    )
    assert list(expression.params.values()) == ["Hi ", ": ", " at ", "A&B"]
    assert (
        renderer.sql_expression(fancy, columns=columns, constants={}, alias="s", param_prefix="p")
        is None
    )
    unknown = renderer.sql_expression(
        plain, columns=columns, constants={}, alias="s", param_prefix="p"
    )
    assert unknown is None  # `shop` is neither a column nor a constant


@pytest.mark.django_db
@pytest.mark.parametrize(
    "title",
    [
        "Tom & Jerry's <b>",
        "  lead\tand\u00a0odd\u2028space\u3000 ",
        "é" * 300,  # cut at 255 characters, not bytes
        "a \n b" * 80,
    ],
)
def test_outbox_insert_sql__writes_what_render_notification_renders(templates, title):
    from django.db import connection

    from jobs.models import Notification
    from jobs.services.outbox import OutgoingNotification, outbox_insert_sql, render_notification

    base = "t/outbox_case"
    templates("outbox_case.subject.txt", "{{ title }} ({{ n }})")
    templates("outbox_case.txt", "Dear {{ title }},\n{{ n }} for {{ shop }}.\n")
    templates("outbox_case.sms.txt", "  {{ shop }}: {{ title }} {{ n }}\n\n")
    statement, params = outbox_insert_sql(
        source="notify",
        template=base,
        columns={"title": "text", "n": "int"},
        constants={"shop": "Tom & Jerry"},
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH notify AS (SELECT * FROM (VALUES ('email', 'a@example.com', 'k1', %(title)s, -42),"
            " ('sms', '+15550001', 'k2', %(title)s, 7), (NULL, '', 'k3', %(title)s, 1))"
            " AS v(channel, recipient, dedup_key, title, n)), outbox AS (" + statement + ")"
            " SELECT count(*) FROM outbox",
            {**params, "title": title},
        )
        assert cursor.fetchone() == (2,)
    for channel, key, n in (("email", "k1", -42), ("sms", "k2", 7)):
        item = OutgoingNotification(
            channel=channel,
            recipient="",
            template=base,
            dedup_key=key,
            context={"title": title, "n": n, "shop": "Tom & Jerry"},
        )
        row = Notification.objects.get(dedup_key=key)
        assert (row.subject, row.body) == render_notification(item)
