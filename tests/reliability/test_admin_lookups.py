"""Admin list lookups: only the declared filters pass; a secret column is never an oracle.

A lookup such as `?account_key__startswith=<guess>` that answered with the matching rows
would give the whole key away in about 25 s of guesses. Every project ModelAdmin refuses
lookups it does not offer as a filter with HTTP 400, the same answer whether the guess is right or wrong, while
every filter, date drill-down and sort link the pages themselves offer still works.
"""

import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from bibliotheca.models import Collection
from exchanges.models import Exchange, MagicToken, Participant
from jobs.admin.lookups import DeclaredLookupsOnly
from jobs.models import JobRun, Notification
from tests.admin_helpers import staff_client
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db

SECRET = "KEY-4b1f9a0c77e2-do-not-leak"


def project_admins() -> list[admin.ModelAdmin]:
    """ModelAdmins of models whose app lives in this repository (not Django's or django-q2's)."""
    base = Path(settings.BASE_DIR).resolve()
    ours = [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if base in (path := Path(model._meta.app_config.path).resolve()).parents
        and "site-packages" not in path.parts
    ]
    return [model_admin for _, model_admin in ours]


@pytest.fixture
def rows(program_factory, card_factory):
    """At least one row per list page, so every filter and date link is shown."""
    card_factory(program_factory(), points=10, inactive_days=3)
    exchange = Exchange.objects.create(
        name="Office", organizer_email="o@example.com", exchange_at=timezone.now() + timedelta(9)
    )
    Participant.objects.create(exchange=exchange, name="Ann", email="ann@example.com")
    MagicToken.objects.create(
        email="ann@example.com",
        token_hash="f00dfeed" * 8,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    Collection.objects.create(
        name="Main library", library_id="lib", account_id="acct", account_key=SECRET
    )
    JobRun.objects.create(job="devkit.demo_job", status="failed", kwargs={"token": "t-123"})
    Notification.objects.create(
        channel="email", recipient="a@example.com", template="t", body="secret link", dedup_key="d"
    )


def test_every_project_admin__refuses_lookups_it_does_not_offer():
    admins = project_admins()

    missing = [type(a).__name__ for a in admins if not isinstance(a, DeclaredLookupsOnly)]
    assert len(admins) >= 15 and missing == []
    assert [e for a in admins for e in a.check() if e.id == "jobs.E101"] == []


@pytest.mark.parametrize(
    "exposure",
    [
        {"list_display": ("name", "account_key")},
        {"search_fields": ("name", "^account_key")},
        {"readonly_fields": ("account_key",)},
        {"sortable_by": ("account_key",)},
    ],
)
def test_secret_column_listed_searched_or_shown__a_system_check_error(exposure):
    careless = type(
        "CarelessAdmin",
        (DeclaredLookupsOnly, admin.ModelAdmin),
        {"secret_fields": ("account_key",), **exposure},
    )(Collection, admin.site)

    errors = [e for e in careless.check() if e.id == "jobs.E101"]

    assert [e.msg for e in errors] == [f"secret column 'account_key' is in {next(iter(exposure))}"]


def test_every_offered_filter_date_and_sort_link__still_answers_200(client, rows):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    checked, broken = 0, []
    for model_admin in project_admins():
        opts = model_admin.model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        page = client.get(url)
        assert page.status_code == 200, url
        links = {unescape(q) for q in re.findall(r'href="(\?[^"]+)"', page.content.decode())}
        for query in sorted(links):
            response = client.get(url + query)
            checked += 1
            if response.status_code != 200:
                broken.append((url + query, response.status_code))
    say(f"{checked} filter/date/sort links of {len(project_admins())} list pages followed")
    assert checked > 40 and broken == []


PROBES = [
    # (list page, lookup, right guess, wrong guess, text that a match would show)
    ("bibliotheca_collection", "account_key__startswith", SECRET[:6], "zzz", "Main library"),
    ("bibliotheca_collection", "account_key__regex", "^KEY", "^ZZZ", "Main library"),
    ("bibliotheca_collection", "library_id__startswith", "li", "zz", "Main library"),
    ("exchanges_magictoken", "token_hash__startswith", "f00d", "beef", "ann@example.com"),
    ("jobs_jobrun", "kwargs__token", "t-123", "t-999", "devkit.demo_job"),
    ("jobs_notification", "body__contains", "secret", "nothing", "a@example.com"),
    ("loyalty_loyaltycard", "customer__email__startswith", "c", "zz", "Customer"),
    ("exchanges_participant", "exchange__organizer_email__startswith", "o", "zz", "Ann"),
]


@pytest.mark.parametrize(("page", "lookup", "right", "wrong", "match_text"), PROBES)
@pytest.mark.parametrize("who", ["view-only", "change-only"])
def test_undeclared_or_secret_lookup__400_and_the_same_answer_for_right_and_wrong_guesses(
    client, rows, who, page, lookup, right, wrong, match_text
):
    app, model = page.split("_", 1)
    staff_client(client, "viola", [(app, f"{who.split('-')[0]}_{model}")])
    url = reverse(f"admin:{page}_changelist")
    assert match_text in client.get(url).content.decode(), "the row is on the page unfiltered"

    hit = client.get(url, {lookup: right})
    miss = client.get(url, {lookup: wrong})

    assert (hit.status_code, miss.status_code) == (400, 400)
    assert hit.content == miss.content
    assert match_text not in hit.content.decode()
    say(f"{who} staff, {page} ?{lookup}=<guess>: 400 for right and wrong guesses alike")


def test_no_permission_staff__no_list_whatever_the_lookup(client, rows):
    staff_client(client, "nora", [])
    for page, lookup, right, _wrong, _text in PROBES:
        response = client.get(reverse(f"admin:{page}_changelist"), {lookup: right})
        assert response.status_code == 403, page


def test_secret_column__refused_even_when_declared_as_a_filter():
    careless = type(
        "CarelessAdmin",
        (DeclaredLookupsOnly, admin.ModelAdmin),
        {"list_filter": ("enabled", "account_key"), "secret_fields": ("account_key",)},
    )(Collection, admin.site)

    assert [e.msg for e in careless.check()] == ["secret column 'account_key' is in list_filter"]
    assert not careless.lookup_allowed("account_key", SECRET, None)
    assert not careless.lookup_allowed("account_key__exact", SECRET, None)
    assert careless.lookup_allowed("enabled__exact", "1", None)
    assert admin.site._registry[Collection].secret_fields == ("account_key",)


ABSURD_FILTER_VALUES = ("\x00", "99999999999", "9" * 5000, "-1", "2026-13-45", "nan")


@pytest.mark.parametrize(
    "model_admin", project_admins(), ids=lambda a: a.model._meta.label_lower
)  # one test per page, so the pages spread over the test workers
def test_every_declared_lookup__absurd_values_never_500(client, rows, model_admin):
    """A declared filter's parameter with a value no link offers: a page or a 400, no 500."""
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    client.raise_request_exception = False
    tried, problems = 0, []
    opts = model_admin.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    for lookup in sorted(model_admin.declared_lookups(None) | {"q", "o", "p"}):
        for value in ABSURD_FILTER_VALUES:
            status = client.get(url, {lookup: value}).status_code
            tried += 1
            if status >= 500:
                problems.append((url, lookup, value[:12], status))
    say(f"{tried} absurd filter values on {url}")
    assert tried >= 3 * len(ABSURD_FILTER_VALUES) and problems == [], "\n".join(map(str, problems))


@pytest.mark.parametrize(
    ("page", "query"),
    [
        ("jobs_jobrun", {"created_at__year": "99999999999"}),
        ("jobs_notification", {"created_at__year": "2026", "created_at__month": "99"}),
        ("loyalty_loyaltytransaction", {"transaction_at__year": "99999999999"}),
        ("exchanges_exchange", {"state__exact": "\x00"}),
        ("bibliotheca_edition", {"medium__exact": "\x00"}),
    ],
)
def test_offered_lookup_with_a_value_nothing_can_take__invalid_filter_notice_not_500(
    client, rows, page, query
):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    url = reverse(f"admin:{page}_changelist")

    response = client.get(url, query)

    assert (response.status_code, response["Location"]) == (302, f"{url}?e=1")


def test_user_list__password_hash_is_no_oracle(client):
    """Checked as a view-only staff user: Django's own UserAdmin refuses lookups on the
    password hash (400 whatever the guess), so the user list is no hash oracle either."""
    target = User.objects.create_user("victim", password="correct horse battery staple")
    staff_client(client, "viewer", [("auth", "view_user")])
    url = reverse("admin:auth_user_changelist")
    right = client.get(url, {"password__startswith": target.password[:12]})
    wrong = client.get(url, {"password__startswith": "nope"})
    assert (right.status_code, wrong.status_code) == (400, 400)
    assert right.content == wrong.content
    assert client.get(url, {"is_staff__exact": "1"}).status_code == 200
    assert client.get(url, {"q": "victim"}).status_code == 200
