"""Addresses an operator types for a customer are checked where they are typed: a phone
number that is no number would turn every SMS to that customer (a points-expiry warning,
a shipping note) into a dead notification, and the customer counts as told."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from commerce.models import Customer as ShopCustomer
from loyalty.models import Customer as CardHolder
from tests.reliability.conftest import say

pytestmark = pytest.mark.django_db

NOT_NUMBERS = ["n/a", "call after 5pm", "+49 171\n1234567", "12", "555-CALL-NOW", "0", "++49 171"]
NUMBERS = ["+49 171 1234567", "(555) 123-4567", "0171/1234567", "+14155550123"]
PAGES = [("admin:loyalty_customer_add", CardHolder), ("admin:commerce_customer_add", ShopCustomer)]


@pytest.fixture
def admin(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.parametrize(("page", "model"), PAGES, ids=["loyalty", "commerce"])
def test_customer_phone__text_that_is_no_number_is_a_form_error(admin, page, model):
    refused = {}
    for phone in NOT_NUMBERS:
        response = admin.post(reverse(page), {"name": "Ann", "email": "", "phone": phone})
        form = response.context["adminform"].form if response.status_code == 200 else None
        refused[phone] = bool(form and "phone" in form.errors)
    say(f"{page}: phone refused {refused}")
    assert refused == dict.fromkeys(NOT_NUMBERS, True) and not model.objects.exists()


@pytest.mark.parametrize(("page", "model"), PAGES, ids=["loyalty", "commerce"])
def test_customer_phone__numbers_as_people_write_them_are_saved(admin, page, model):
    for phone in NUMBERS:
        response = admin.post(reverse(page), {"name": "Ann", "email": "", "phone": phone})
        assert response.status_code == 302, phone
    assert sorted(model.objects.values_list("phone", flat=True)) == sorted(NUMBERS)
