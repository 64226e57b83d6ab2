"""Tokens store only their hash and are used once; plain send_email / send_sms go out once."""

from datetime import timedelta

import pytest
import time_machine

from commerce.models import ExpiringToken
from commerce.services.notifications import send_email, send_sms
from commerce.services.tokens import issue_token, token_hash, use_token
from jobs.models import Notification
from tests.commerce.conftest import NOW

pytestmark = pytest.mark.django_db


def test_token__only_its_hash_stored_used_once(frozen_now, customer_factory):
    raw = issue_token(kind="password_reset", customer=customer_factory(), ttl_seconds=3600)

    row = ExpiringToken.objects.get()
    assert row.token_hash == token_hash(raw) and raw not in row.token_hash
    assert use_token(kind="email_verification", raw=raw) is None  # wrong kind
    assert use_token(kind="password_reset", raw=raw).used_at == NOW
    assert use_token(kind="password_reset", raw=raw) is None  # used already


def test_token__expired_cannot_be_used(frozen_now):
    raw = issue_token(kind="one_time_code", customer=None, ttl_seconds=300)
    with time_machine.travel(NOW + timedelta(seconds=301), tick=False):
        assert use_token(kind="one_time_code", raw=raw) is None
    with pytest.raises(ValueError, match="unknown token kind"):
        issue_token(kind="magic", customer=None, ttl_seconds=1)


def test_plain_email_and_sms__queued_once_with_subject_and_body():
    assert send_email(to="ops@example.com", subject="Stock low", body="Coffee: 3 left")
    assert not send_email(to="ops@example.com", subject="Stock low", body="Coffee: 3 left")
    assert send_sms(to="+15550100", body="Coffee: 3 left")

    email = Notification.objects.get(channel="email")
    assert (email.subject, email.body.strip()) == ("Stock low", "Coffee: 3 left")
    assert Notification.objects.get(channel="sms").body == "Coffee: 3 left"
