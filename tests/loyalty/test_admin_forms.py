"""Loyalty admin forms as staff with exactly the permission they need.

Adding a card works although its last activity is required in the database and
read-only in the form: a new card's inactivity counts from when it was added. A
program's expiration days are bounded (0..3650) in the form, not only in the database.
"""

import pytest
from django.urls import reverse

from loyalty.models import Customer, LoyaltyCard, LoyaltyProgram, Merchant
from tests.admin_helpers import staff_client
from tests.loyalty.conftest import NOW
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db


def management_forms(page) -> dict[str, str]:
    """The inline formsets' management data, as the browser posts it unchanged."""
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        form = inline.formset.management_form
        data.update({form.add_prefix(name): str(form[name].value()) for name in form.fields})
    return data


@pytest.mark.parametrize(
    "permissions",
    [
        (("loyalty", "add_loyaltycard"),),
        (("loyalty", "add_loyaltycard"), ("loyalty", "view_loyaltytransaction")),
    ],
    ids=["add-only", "add-and-ledger-view"],
)
def test_add_card__saved_with_activity_now_and_an_empty_balance(client, frozen_now, permissions):
    merchant = Merchant.objects.create(name="Cafe")
    customer = Customer.objects.create(name="Ann", email="ann@example.com")
    staff_client(client, "ada", permissions)
    url = reverse("admin:loyalty_loyaltycard_add")
    page = client.get(url)
    assert page.status_code == 200

    response = client.post(
        url,
        {
            "merchant": merchant.pk,
            "customer": customer.pk,
            "number": "C-0001",
            "is_active": "on",
            "google_object_id": "",
            "apple_serial_number": "",
            "_save": "Save",
            **management_forms(page),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    card = LoyaltyCard.objects.get(number="C-0001")
    assert (card.last_activity_at, card.points_balance, card.merchant) == (NOW, 0, merchant)
    say(f"admin add card as {[p[1] for p in permissions]}: saved, last activity {NOW}")


@pytest.fixture
def program(program_factory) -> LoyaltyProgram:
    return program_factory(expiration_days=365)


def program_form(program: LoyaltyProgram, days: str) -> dict[str, str]:
    return {
        "merchant": program.merchant_id,
        "name": program.name,
        "is_active": "on",
        "points_expiration_days": days,
        "expiration_warning_days": "14",
        "_save": "Save",
    }


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("5000000", "Ensure this value is less than or equal to 3650."),
        ("3651", "Ensure this value is less than or equal to 3650."),
        ("9" * 5000, "Enter a whole number."),
        ("-1", "Ensure this value is greater than or equal to 0."),
        ("1e3", "Enter a whole number."),
    ],
    ids=["5e6", "3651", "5000-digits", "negative", "exponent"],
)
def test_program_form__absurd_expiration_days_refused_nothing_saved(client, program, days, message):
    staff_client(client, "carl", [("loyalty", "change_loyaltyprogram")])
    url = reverse("admin:loyalty_loyaltyprogram_change", args=[program.pk])

    response = client.post(url, program_form(program, days))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors == {"points_expiration_days": [message]}
    program.refresh_from_db()
    assert program.points_expiration_days == 365


def test_program_form__bound_itself_and_never_are_saved(client, program):
    staff_client(client, "carl", [("loyalty", "change_loyaltyprogram")])
    url = reverse("admin:loyalty_loyaltyprogram_change", args=[program.pk])

    for days, stored in (("3650", 3650), ("0", 0), ("", None)):
        assert client.post(url, program_form(program, days)).status_code == 302
        program.refresh_from_db()
        assert program.points_expiration_days == stored


def test_program_form__an_expiration_change_shows_the_cards_it_would_warn_before_saving(
    client, program, card_factory, frozen_now
):
    for inactive in (40, 100, 200):  # idle, but far from 365 days
        card_factory(program, points=10, inactive_days=inactive)
    card_factory(program, points=10, inactive_days=1)
    staff_client(client, "carl", [("loyalty", "change_loyaltyprogram")])
    url = reverse("admin:loyalty_loyaltyprogram_change", args=[program.pk])

    asked = client.post(url, program_form(program, "30"))

    assert asked.status_code == 200
    assert asked.context["adminform"].form.errors == {
        "confirm_expiration_change": [
            "With this change the next nightly run warns 3 card(s) and expires the points"
            " of 0 (already warned for the date that has come). Tick the box to save."
        ]
    }
    program.refresh_from_db()
    assert program.points_expiration_days == 365
    confirmed = client.post(url, {**program_form(program, "30"), "confirm_expiration_change": "on"})
    assert confirmed.status_code == 302
    program.refresh_from_db()
    assert program.points_expiration_days == 30
    # A change of the name alone asks nothing.
    renamed = {**program_form(program, "30"), "name": "Renamed"}
    assert client.post(url, renamed).status_code == 302


def test_program_form__view_only_staff_cannot_change_the_expiration(client, program):
    staff_client(client, "vera", [("loyalty", "view_loyaltyprogram")])
    url = reverse("admin:loyalty_loyaltyprogram_change", args=[program.pk])

    response = client.post(url, {**program_form(program, "30"), "confirm_expiration_change": "on"})

    assert response.status_code == 403
    program.refresh_from_db()
    assert program.points_expiration_days == 365


def test_program_form__a_second_active_program_for_the_merchant_is_refused(client, program):
    staff_client(client, "carl", [("loyalty", "add_loyaltyprogram")])

    response = client.post(
        reverse("admin:loyalty_loyaltyprogram_add"),
        {**program_form(program, "90"), "name": "Second", "confirm_expiration_change": "on"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "This merchant already has an active program: deactivate it first."
    ]
    assert LoyaltyProgram.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("apple_serial_number", "Another card has this Apple serial number."),
        ("google_object_id", "Another card has this Google object id."),
    ],
)
def test_add_card__a_pass_id_another_card_has_is_refused_nothing_saved(
    client, frozen_now, program, card_factory, field, message
):
    """A pass names its card by this id (the PassKit web service finds the card by serial
    number; the sync PATCHes the Google object): two cards with one id would show one
    customer the other's card number, QR code and points."""
    taken = card_factory(program, apple="serial-1", google="issuer.obj-1")
    customer = Customer.objects.create(name="Bob", email="bob@example.com")
    staff_client(client, "ada", [("loyalty", "add_loyaltycard")])
    url = reverse("admin:loyalty_loyaltycard_add")
    page = client.get(url)

    response = client.post(
        url,
        {
            "merchant": program.merchant_id,
            "customer": customer.pk,
            "number": "C-0002",
            "is_active": "on",
            "google_object_id": "",
            "apple_serial_number": "",
            field: getattr(taken, field),
            "_save": "Save",
            **management_forms(page),
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"__all__": [message]}
    assert not LoyaltyCard.objects.filter(number="C-0002").exists()


def test_migration__cards_sharing_a_pass_id_stop_it_naming_them(program, card_factory):
    """Which card a pass belongs to is the merchant's call, not a migration's."""
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("loyalty.migrations.0008_card_pass_ids_unique")
    first = card_factory(program, apple="serial-1")
    with connection.cursor() as cursor:  # rows from before the constraint (rolled back)
        cursor.execute("DROP INDEX loyalty_card_apple_serial_unique")
    second = card_factory(program, apple="serial-1")

    with pytest.raises(RuntimeError) as refused:
        migration.refuse_shared_pass_ids(apps, None)

    assert str(refused.value) == (
        "a pass belongs to one card; clear the id on all but one card of each"
        f" (apple_serial_number 'serial-1': cards {first.pk}, {second.pk}), then migrate again"
    )
