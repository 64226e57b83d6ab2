"""Junk at every URL: the anonymous endpoints and the admin answer a 4xx (or their normal
answer), never a 500, and a refused request changes nothing.

Each junk input is varied alone against a request that is otherwise right (a valid pass
token, a signed webhook secret configured, a real selected row), so a refusal is the
junk's doing, and the run stays small enough to be quick (real client, real PostgreSQL).
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from bibliotheca.models import Collection, Gap
from commerce.models import Customer, Product, Subscription, WebhookEvent
from exchanges.models import Exchange, Participant
from jobs.models import JobRun, Lease, Notification
from loyalty.services.apple_passes import authentication_token
from tests.admin_helpers import make_staff
from tests.reliability.conftest import say
from tests.reliability.test_admin_lookups import project_admins

pytestmark = pytest.mark.django_db

PASS_TYPE = "pass.com.example.loyalty"
SERIAL = "serial-fuzz"
DEVICE = "a1b2c3d4e5f6"
LONG = "x" * 5000
ANONYMOUS = {
    "health": "/health/",
    "metrics": "/metrics",
    "webhook": "/webhooks/razorpay/",
    "device log": "/passkit/v1/log",
    "registration": f"/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}/{SERIAL}",
    "serials": f"/passkit/v1/devices/{DEVICE}/registrations/{PASS_TYPE}",
    "pass": f"/passkit/v1/passes/{PASS_TYPE}/{SERIAL}",
    "wallet status": "/wallet-status/",
    "overlong device": f"/passkit/v1/devices/{LONG}/registrations/{PASS_TYPE}/{SERIAL}",
    "non-ASCII serial": f"/passkit/v1/passes/{PASS_TYPE}/{'é' * 300}",
    "undecodable serial": f"/passkit/v1/passes/{PASS_TYPE}/%FF%FE",
    "NUL serial": f"/passkit/v1/passes/{PASS_TYPE}/a%00b",
}
METHODS = ("get", "head", "options", "post", "put", "patch", "delete")
BODIES = {
    "empty": b"",
    "NUL": b"\x00",
    "cut JSON": b'{"pushToken": "ab',
    "JSON NUL escape": b'{"pushToken": "\\u0000", "logs": ["\\u0000"], "event": "\\u0000"}',
    "lone surrogate": b'{"event": "\\ud800", "logs": ["\\ud800"]}',
    "not UTF-8": b"\xff\xfe\x00",
    "deep": b"[" * 20_000,
    "wrong types": b'{"pushToken": [1], "logs": {"a": 1}, "event": 5}',
    "huge": b'{"logs": ["' + b"y" * 3_000_000 + b'"]}',
}
HEADERS = {
    "no auth": {},
    "empty auth": {"HTTP_AUTHORIZATION": ""},
    "scheme only": {"HTTP_AUTHORIZATION": "ApplePass"},
    "bearer": {"HTTP_AUTHORIZATION": "Bearer " + authentication_token(SERIAL)},
    "basic": {"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="},
    "non-ASCII token": {"HTTP_AUTHORIZATION": "ApplePass é€"},
    "NUL token": {"HTTP_AUTHORIZATION": "ApplePass \x00"},
    "overlong token": {"HTTP_AUTHORIZATION": "ApplePass " + LONG},
    "duplicate auth": {"HTTP_AUTHORIZATION": f"ApplePass {authentication_token(SERIAL)}, x"},
    "bad dates": {"HTTP_IF_MODIFIED_SINCE": "Feb 30 99999 \x00", "HTTP_X_RAZORPAY_SIGNATURE": "é"},
    "bad length": {"CONTENT_LENGTH": "-1"},
    "bad event id": {"HTTP_X_RAZORPAY_EVENT_ID": "\x00é" * 100, "HTTP_X_RAZORPAY_SIGNATURE": ""},
}
VALID_AUTH = {"HTTP_AUTHORIZATION": f"ApplePass {authentication_token(SERIAL)}"}
#: What no answer to a stranger may carry: exception text, our hosts, a stack.
REVEALING = ("Traceback", 'File "', "Error:", "127.0.0.1", "localhost", "psycopg", "django")


@pytest.fixture
def anonymous_world(settings, program_factory, card_factory, fake_wallet):
    settings.COMMERCE_RAZORPAY_WEBHOOK_SECRET = "whsec_fuzz"
    settings.PRODUCTION = True  # /metrics closed, as in production
    settings.METRICS_TOKEN = "metrics-fuzz"
    card_factory(program_factory(), apple=SERIAL)


def test_anonymous_endpoints__junk_is_a_4xx_that_says_nothing_never_a_500(anonymous_world):
    client = Client(raise_request_exception=False)
    tried, problems = 0, []

    def send(name: str, url: str, method: str, body: bytes = b"", **headers: str) -> None:
        nonlocal tried
        call = getattr(client, method)
        if method in ("get", "head", "options"):
            response = call(url, **headers)
        else:
            response = call(url, body, content_type="application/json", **headers)
        tried += 1
        text = response.content.decode("utf-8", "replace")
        if response.status_code >= 500 or (
            response.status_code >= 400 and any(word in text for word in REVEALING)
        ):
            problems.append((name, method, body[:12], sorted(headers)[:1], response.status_code))

    for name, url in ANONYMOUS.items():
        for method in METHODS:
            send(name, url, method, **VALID_AUTH)
        for body in BODIES.values():
            for method in ("post", "delete"):
                send(name, url, method, body, **VALID_AUTH)
        for headers in HEADERS.values():
            for method in ("get", "post"):
                send(name, url, method, b'{"pushToken": "abababab"}', **headers)
        for query in ("passesUpdatedSince=%00", "passesUpdatedSince=" + "9" * 40, "fresh=%00"):
            send(name, f"{url}?{query}", "get", **VALID_AUTH)
    say(f"{tried} junk requests to {len(ANONYMOUS)} anonymous URLs: {len(problems)} 5xx/revealing")
    assert tried > 500 and problems == [], "\n".join(map(str, problems))


# -- the admin: hand-made action posts and lookups ------------------------------------------


@pytest.fixture
def rows(program_factory, card_factory):
    """A row behind every action of every project admin."""
    now = timezone.now()
    card_factory(program_factory(), points=10, inactive_days=400, apple="s-1")
    exchange = Exchange.objects.create(
        name="Office", organizer_email="o@example.com", exchange_at=now + timedelta(days=9)
    )
    Participant.objects.create(exchange=exchange, name="Ann", email="ann@example.com")
    customer = Customer.objects.create(name="Cu", email="cu@example.com")
    product = Product.objects.create(sku="S1", name="P", price=Decimal(1), stock_quantity=3)
    Subscription.objects.create(
        customer=customer, product=product, frequency="weekly",
        next_delivery_date=now.date(), price_per_delivery=Decimal(1),
    )  # fmt: skip
    WebhookEvent.objects.create(
        provider="razorpay", event_id="evt_1", event_type="payment.failed", payload={},
        received_at=now,
    )  # fmt: skip
    collection = Collection.objects.create(
        name="Main", library_id="lib", account_id="acct", account_key="k"
    )
    Gap.objects.create(collection=collection, day=now, window_end=now + timedelta(hours=1))
    JobRun.objects.create(job="devkit.demo_job", status="failed")
    Notification.objects.create(
        channel="email", recipient="a@example.com", template="t", body="b", dedup_key="k",
        status="dead",
    )  # fmt: skip
    Lease.objects.create(key="job:x", owner="run:1", acquired_at=now, expires_at=now)


def snapshot() -> tuple:
    """Every row of every model with a project admin, and the queue: what an action changes."""
    models = sorted({a.model for a in project_admins()}, key=lambda m: m._meta.label)
    return (
        *(tuple(m.objects.order_by("pk").values_list()) for m in models),
        OrmQ.objects.count(),
    )


def actions_of(model_admin: admin.ModelAdmin) -> list[str]:
    names = [a if isinstance(a, str) else a.__name__ for a in model_admin.actions or ()]
    return [*names, "delete_selected"]


def changelist(model_admin: admin.ModelAdmin) -> str:
    opts = model_admin.model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")


#: `_selected_action` values no checkbox of the page carries.
BAD_IDS = ("", "1.5", "1\x00", "9" * 40)


def test_admin_actions__hand_made_selected_ids_are_a_4xx_never_a_500(rows):
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    before, tried, problems = snapshot(), 0, []
    for model_admin in project_admins():
        url = changelist(model_admin)
        for action in actions_of(model_admin):
            for value in BAD_IDS:
                data = {"action": action, "_selected_action": [value], "index": "0"}
                status = client.post(url, {**data, "post": "yes"}).status_code
                tried += 1
                if status >= 500:
                    problems.append((url, action, repr(value[:8]), status))
    say(f"{tried} action posts with hand-made ids: {len(problems)} server errors")
    assert problems == [], "\n".join(map(str, problems))
    assert snapshot() == before


def test_admin_autocomplete__hand_made_search_terms_are_never_a_500(rows):
    """Django's autocomplete URL answers for every admin with search fields, though no page
    of ours links to it: a term the database cannot take is refused, not a 500."""
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    problems = []
    sources = [
        ("exchanges", "participant", "exchange"),
        ("commerce", "subscription", "customer"),
        ("loyalty", "loyaltycard", "customer"),
        ("bibliotheca", "licensepool", "collection"),
    ]
    for app, model, field in sources:
        for term in ("\x00", "a\x00b", "é", LONG, "%", "_"):
            query = {"app_label": app, "model_name": model, "field_name": field, "term": term}
            status = client.get("/admin/autocomplete/", query).status_code
            if status >= 500:
                problems.append((app, model, repr(term[:8]), status))
    assert problems == [], "\n".join(map(str, problems))


@pytest.mark.parametrize(
    "role",
    [
        (),
        tuple(
            f"{a.model._meta.app_label}.view_{a.model._meta.model_name}" for a in project_admins()
        ),
    ],
    ids=["no-permission", "view-only"],
)
def test_admin_actions__posted_without_the_permission_change_nothing(rows, role):
    """Every action of every project admin, answered "yes" by a staff user who may not do
    it (the button is hidden; the POST is refused too). The matrix in test_security.py
    covers run-only and change-only users of the jobs' actions."""
    client = Client(raise_request_exception=False)
    client.force_login(make_staff("limited", *role))
    before, tried, changed = snapshot(), 0, []
    for model_admin in project_admins():
        url = changelist(model_admin)
        pks = list(model_admin.model.objects.values_list("pk", flat=True)[:3])
        for action in actions_of(model_admin):
            data = {"action": action, "_selected_action": pks, "index": "0", "post": "yes"}
            status = client.post(url, data).status_code
            tried += 1
            if snapshot() != before or status >= 500:
                changed.append((url, action, status))
    say(f"{len(role)} view permissions: {tried} action posts, {len(changed)} did something")
    assert tried > 20 and changed == []
