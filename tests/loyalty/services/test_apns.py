"""The APNs client against the HTTP/2 fake: provider token (ES256) reuse and renewal, topic."""

from datetime import timedelta

import pytest
import time_machine

from loyalty.exceptions import WalletCredentialsError
from loyalty.services.apns import SENT
from loyalty.services.wallet_clients import wallet_clients

pytestmark = pytest.mark.django_db
DEVICE = "ab" * 32


def test_provider_token__reused_for_50_minutes_then_renewed_and_accepted(frozen_now, fake_wallet):
    apns = wallet_clients().apple
    assert apns is not None

    first = apns.provider_token()
    assert apns.push(DEVICE) == SENT
    with time_machine.travel(frozen_now + timedelta(minutes=49), tick=False):
        assert apns.provider_token() == first
        assert apns.push(DEVICE) == SENT
    with time_machine.travel(frozen_now + timedelta(minutes=51), tick=False):
        renewed = apns.provider_token()
        assert apns.push(DEVICE) == SENT

    assert renewed != first
    assert [p.status for p in fake_wallet.apns.pushes] == [200, 200, 200]


def test_wrong_topic__is_a_credentials_error_naming_the_setting(fake_wallet, settings):
    settings.LOYALTY_APPLE_PASS_TYPE_ID = "pass.com.example.other"
    apns = wallet_clients().apple
    assert apns is not None

    with pytest.raises(
        WalletCredentialsError, match="TopicDisallowed for topic pass.com.example.other"
    ):
        apns.push(DEVICE)


@pytest.mark.slow
def test_concurrent_pushes__every_answer_arrives_once_over_one_http2_client(fake_wallet):
    """32 threads share the client: each push is answered, none is lost or sent twice.

    The sync httpx client shared by threads read and wrote its TLS socket from several
    threads; about once per 2,000 pushes the connection broke and every stream in flight
    (some 25 pushes) was lost. Slow (about a minute): run with `-m slow`."""
    from concurrent.futures import ThreadPoolExecutor

    apns = wallet_clients().apple
    assert apns is not None
    fake_wallet.apns.faults.latency_seconds = 0.05
    tokens = [f"{i:064x}" for i in range(1, 6001)]

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(apns.push, tokens))

    assert answers == [SENT] * len(tokens)
    assert sorted(p.device_token for p in fake_wallet.apns.pushes) == sorted(tokens)
