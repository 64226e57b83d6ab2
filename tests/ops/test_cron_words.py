"""describe_cron: the common forms in words, anything else raw (never paraphrased wrongly)."""

import pytest

from jobs.queue.cron_words import describe_cron


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        (None, "on demand"),
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("7 * * * *", "hourly at :07"),
        ("30 3 * * *", "daily at 03:30 UTC"),
        ("0 9 * * 1", "weekly on Monday at 09:00 UTC"),
        ("0 9 * * 7", "weekly on Sunday at 09:00 UTC"),
        ("15 4 1 * *", "monthly on day 1 at 04:15 UTC"),
        ("0 9-17 * * 1-5", "0 9-17 * * 1-5"),
        ("0 0 1 1 *", "0 0 1 1 *"),
        ("61 * * * *", "61 * * * *"),
        ("@daily", "@daily"),
    ],
)
def test_describe_cron__common_forms_in_words_others_raw(expression, words):
    assert describe_cron(expression) == words
