"""fetch_prepared: a statement prepared once per connection, Django's error classes."""

import pytest
from django.db import IntegrityError, connection

from jobs.db import fetch_prepared

pytestmark = pytest.mark.django_db(transaction=True)

PROBE = "SELECT %(n)s::int * 2 AS fetch_prepared_probe"


def _prepared_probes() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["%fetch_prepared_probe%"],
        )
        return cursor.fetchall()


def test_statement_run_three_times__is_prepared_once_with_one_generic_plan():
    assert [fetch_prepared(PROBE, {"n": n}) for n in (1, 2, 3)] == [[(2,)], [(4,)], [(6,)]]

    assert _prepared_probes() == [(3, 0)]  # one statement, its generic plan run 3 times


def test_statement_without_rows__returns_an_empty_list():
    assert (
        fetch_prepared(
            "SELECT set_config('application_name', %(v)s, false) WHERE false", {"v": "x"}
        )
        == []
    )


def test_database_error__is_djangos_class():
    fetch_prepared("CREATE TEMP TABLE probe_unique (v int PRIMARY KEY)", {})
    fetch_prepared("INSERT INTO probe_unique VALUES (%(v)s)", {"v": 1})

    with pytest.raises(IntegrityError):
        fetch_prepared("INSERT INTO probe_unique VALUES (%(v)s)", {"v": 1})
