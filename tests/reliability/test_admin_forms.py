"""Bad input in the Exchange change form (admin, superuser): rejected with a message, nothing saved.

Each case posts the exchange's own current form data with one field made bad, through the
Django test client, and checks the error shown and that the row (and its reminders) did not
change. A valid edit of the same form is the control: the data the cases start from is good.
"""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.admin import site
from django.contrib.auth.models import User
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.urls import reverse

from bibliotheca.models import Collection, Edition, Identifier, LicensePool
from exchanges.models import Exchange, Participant, Reminder
from exchanges.services.reminder_planning import plan_reminders
from loyalty.models import Merchant, Store
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db

EXCHANGE_AT = datetime(2026, 12, 18, 23, 0, tzinfo=UTC)


@pytest.fixture
def admin(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    return client


@pytest.fixture
def exchange() -> Exchange:
    """A matched exchange with its reminders planned (edits of date and intervals re-plan)."""
    exchange = Exchange.objects.create(
        name="Office party",
        organizer_email="organizer@example.com",
        timezone="America/New_York",
        exchange_at=EXCHANGE_AT,
        reminder_days=[7, 3, 1],
        state=Exchange.State.MATCHED,
    )
    Participant.objects.create(exchange=exchange, name="Ann", email="ann@example.com")
    plan_reminders(exchange_id=exchange.pk, now=datetime(2026, 11, 1, tzinfo=UTC))
    return exchange


def change_url(exchange: Exchange) -> str:
    return reverse("admin:exchanges_exchange_change", args=[exchange.pk])


def form_data(client, exchange: Exchange) -> dict[str, str]:
    """What the browser would post unchanged: the main form and every inline formset."""
    page = client.get(change_url(exchange))
    assert page.status_code == 200
    data = {
        "name": exchange.name,
        "organizer_email": exchange.organizer_email,
        "timezone": exchange.timezone,
        "exchange_at_0": exchange.exchange_at.strftime("%Y-%m-%d"),  # admin shows UTC
        "exchange_at_1": exchange.exchange_at.strftime("%H:%M:%S"),
        "reminder_days": json.dumps(exchange.reminder_days),
        "_save": "Save",
    }
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        for form in [formset.management_form, *formset.forms]:
            for name in form.fields:
                value = form[name].value()
                if value is not None:
                    data[form.add_prefix(name)] = str(value)
    return data


def snapshot(exchange: Exchange) -> tuple:
    row = Exchange.objects.filter(pk=exchange.pk).values().get()
    reminders = list(
        Reminder.objects.filter(exchange=exchange)
        .order_by("pk")
        .values_list("pk", "days_before", "due_at", "status")
    )
    return row, reminders


def errors_of(response) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {name: list(errors) for name, errors in form.errors.items()}


BAD = [
    # (field, posted value, expected message for that field)
    ("timezone", "Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
    ("timezone", "EST+5", "unknown timezone 'EST+5'"),
    ("timezone", "../../etc/passwd", "unknown timezone '../../etc/passwd'"),
    # zoneinfo loads these, but they are not zones an exchange can be in: the host's own
    # clock (differs between hosts), leap-second-counting and placeholder files.
    ("timezone", "localtime", "unknown timezone 'localtime'"),
    ("timezone", "right/UTC", "unknown timezone 'right/UTC'"),
    ("timezone", "posixrules", "unknown timezone 'posixrules'"),
    ("timezone", "Factory", "unknown timezone 'Factory'"),
    ("timezone", "", "This field is required."),
    ("reminder_days", "[0, -3]", "reminder days must be a list of whole days from 1 to 365"),
    ("reminder_days", "abc", "Enter a valid JSON."),
    ("reminder_days", "[7, 7]", "reminder days must not repeat"),
    ("reminder_days", "[366]", "reminder days must be a list of whole days from 1 to 365"),
    ("reminder_days", "[1.5]", "reminder days must be a list of whole days from 1 to 365"),
    ("reminder_days", "[true]", "reminder days must be a list of whole days from 1 to 365"),
    ("reminder_days", '{"7": 1}', "reminder days must be a list of whole days from 1 to 365"),
    ("reminder_days", '"7,3,1"', "reminder days must be a list of whole days from 1 to 365"),
    ("reminder_days", "", "This field is required."),
    # Python's parser cannot hold these: a form error, not a 500.
    ("reminder_days", "[" + "9" * 5000 + "]", "Enter a valid JSON."),
    ("reminder_days", "[" * 50_000, "Enter a valid JSON."),
    ("reminder_days", "[NaN]", "Enter a valid JSON."),
    ("reminder_days", "[1e999]", "Enter a valid JSON."),
    ("exchange_at_0", "2026-02-30", "Enter a valid date."),
    ("exchange_at_0", "18/12/2026x", "Enter a valid date."),
    ("exchange_at_1", "25:00", "Enter a valid time."),
    ("exchange_at_0", "", "This field is required."),
    # Valid dates, but no exchange: the local clock and the reminders before it overflow.
    ("exchange_at_0", "0001-01-01", "the exchange date must be between 2000 and 2999"),
    ("exchange_at_0", "9999-12-31", "the exchange date must be between 2000 and 2999"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"), BAD, ids=[f"{f}={v!r}"[:60] for f, v, _ in BAD]
)
def test_exchange_form__bad_value_rejected_with_message_and_nothing_changed(
    admin, exchange, field, value, message
):
    before = snapshot(exchange)
    data = form_data(admin, exchange)
    data[field] = value
    response = admin.post(change_url(exchange), data)

    assert response.status_code == 200, "the form must be shown again, not saved"
    errors = errors_of(response)
    form_field = field.removesuffix("_0").removesuffix("_1")
    assert message in errors.get(form_field, []), errors
    assert "Please correct the error below." in response.content.decode()
    assert snapshot(exchange) == before
    say(f"admin Exchange form {field}={value!r}: rejected ({errors[form_field][0]}); unchanged")


def test_exchange_form__valid_edit_is_saved_and_replans_reminders(admin, exchange):
    """The control: the same form data with good values is accepted."""
    data = form_data(admin, exchange)
    data.update(timezone="Europe/Paris", reminder_days="[10, 2]")
    response = admin.post(change_url(exchange), data)

    assert response.status_code == 302, errors_of(response)
    exchange.refresh_from_db()
    assert exchange.timezone == "Europe/Paris" and exchange.reminder_days == [10, 2]
    planned = set(Reminder.objects.filter(exchange=exchange).values_list("days_before", flat=True))
    assert {10, 2} <= planned


# -- every numeric admin field of the apps, with absurd values ---------------------------------

HUGE_INT = "9" * 5000
ABSURD_VALUES = (HUGE_INT, "-" + HUGE_INT, f"[{HUGE_INT}]", "1e999999", "[" * 50_000, "nan")
NUMERIC_FIELDS = (
    models.IntegerField,
    models.FloatField,
    models.DecimalField,
    models.JSONField,
    models.ForeignKey,
    models.DateField,  # DateTimeField too
)


@pytest.fixture
def app_rows(program_factory, card_factory):
    """A row behind every change page of loyalty, exchanges and bibliotheca."""
    card_factory(program_factory(), points=10, inactive_days=3)
    exchange = Exchange.objects.create(
        name="Office", organizer_email="o@example.com", exchange_at=EXCHANGE_AT
    )
    Participant.objects.create(exchange=exchange, name="Ann", email="ann@example.com")
    Store.objects.create(merchant=Merchant.objects.first(), name="Main street")
    collection = Collection.objects.create(
        name="Main library",
        library_id="lib",
        account_id="acct",
        account_key="k",
        base_url="https://partner.yourcloudlibrary.com/",
    )
    identifier = Identifier.objects.create(type="bibliotheca", value="bib1")
    LicensePool.objects.create(collection=collection, identifier=identifier)
    Edition.objects.create(identifier=identifier, title="A book")


def posted_data(page) -> dict[str, str]:
    """What the browser posts for the page's form and inline formsets, unchanged."""
    data: dict[str, str] = {"_save": "Save"}
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            widget = field.widget
            keys = (
                [f"{form.add_prefix(name)}_{i}" for i in range(len(widget.widgets))]
                if hasattr(widget, "widgets")
                else [form.add_prefix(name)]
            )
            values = widget.decompress(value) if hasattr(widget, "widgets") else [value]
            for key, v in zip(keys, values, strict=False):
                if v is not None and v is not False:
                    data[key] = "on" if v is True else str(v)
    return data


def numeric_form_fields(page) -> dict[str, list[str]]:
    """Main-form fields backed by a numeric, JSON, date or relation column: their keys."""
    form = page.context["adminform"].form
    out = {}
    for name, field in form.fields.items():
        try:
            column = form._meta.model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if isinstance(column, NUMERIC_FIELDS):
            widget = field.widget
            out[name] = (
                [f"{name}_{i}" for i in range(len(widget.widgets))]
                if hasattr(widget, "widgets")
                else [name]
            )
    return out


def test_every_numeric_admin_field__absurd_values_are_form_errors_never_500(admin, app_rows):
    pages = []
    for model in site._registry:
        if model._meta.app_label not in ("loyalty", "exchanges", "bibliotheca"):
            continue
        info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages.append(reverse(f"{info}_add"))
        first = model.objects.order_by("pk").first()
        if first is not None:
            pages.append(reverse(f"{info}_change", args=[first.pk]))
    admin.raise_request_exception = False  # a 500 is a finding here, not a crash of the test
    tried, problems = 0, []
    for url in pages:
        page = admin.get(url)
        if page.status_code != 200 or "adminform" not in page.context:
            continue  # read-only models have no add page
        if page.context["adminform"].form.fields == {}:
            continue
        base = posted_data(page)
        for name, keys in numeric_form_fields(page).items():
            for value in ABSURD_VALUES:
                response = admin.post(url, {**base, **dict.fromkeys(keys, value)})
                tried += 1
                form = response.context and response.context.get("adminform")
                if response.status_code != 200 or not form or name not in form.form.errors:
                    problems.append((url, name, value[:12], response.status_code))
    say(f"{tried} absurd numeric values posted to {len(pages)} admin forms")
    assert tried > 50 and problems == [], "\n".join(map(str, problems))
