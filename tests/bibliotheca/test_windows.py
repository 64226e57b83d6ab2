"""Window and offset arithmetic for full, partial and empty pages."""

from datetime import UTC, datetime

from bibliotheca.services.windows import (
    Position,
    checkpoint_after_page,
    next_position,
    window_end,
)

DAY = datetime(2014, 1, 1, tzinfo=UTC)
NEXT_DAY = datetime(2014, 1, 2, tzinfo=UTC)


def test_window_end__is_one_day_later_but_never_past_now():
    assert window_end(DAY, datetime(2015, 1, 1, tzinfo=UTC)) == NEXT_DAY
    assert window_end(DAY, datetime(2014, 1, 1, 9, tzinfo=UTC)) == datetime(
        2014, 1, 1, 9, tzinfo=UTC
    )


def test_full_page__stays_on_the_day_and_advances_offset_by_50():
    position = Position(current_day=DAY, offset=51)

    assert next_position(position, records_on_page=50, day_end=NEXT_DAY) == Position(
        current_day=DAY, offset=101
    )
    assert checkpoint_after_page(position, records_on_page=50, day_end=NEXT_DAY) == DAY


def test_partial_page__moves_to_the_next_window_at_offset_1():
    position = Position(current_day=DAY, offset=51)

    assert next_position(position, records_on_page=20, day_end=NEXT_DAY) == Position(
        current_day=NEXT_DAY, offset=1
    )
    assert checkpoint_after_page(position, records_on_page=20, day_end=NEXT_DAY) == NEXT_DAY


def test_empty_page__finishes_the_day():
    position = Position(current_day=DAY, offset=1)

    assert next_position(position, records_on_page=0, day_end=NEXT_DAY) == Position(
        current_day=NEXT_DAY, offset=1
    )
    assert checkpoint_after_page(position, records_on_page=0, day_end=NEXT_DAY) == NEXT_DAY
