"""The APNs client against the HTTP/2 fake: the pass type certificate (default), token auth
(option), the headers Apple asks for on a pass update, and the refusals of each."""

from datetime import timedelta

import pytest
import time_machine

from devkit.wallets.keys import generate_keys
from loyalty.exceptions import TransientWalletError, WalletCredentialsError
from loyalty.services.apns import SENT
from loyalty.services.wallet_clients import wallet_clients
from loyalty.services.wallet_sync import sync_wallet_passes

pytestmark = pytest.mark.django_db
DEVICE = "ab" * 32


def test_certificate__default_auth_pushes_an_empty_background_update_for_the_pass_topic(
    fake_wallet,
):
    apns = wallet_clients().apple
    assert apns is not None and apns.auth == "certificate"

    assert apns.push(DEVICE) == SENT

    [push] = fake_wallet.apns.pushes
    assert (push.auth, push.topic, push.payload, push.push_type, push.priority, push.status) == (
        "certificate",
        "pass.com.example.loyalty",
        b"{}",
        "background",
        "5",
        200,
    )


def test_certificate__refused_or_untrusted_names_the_certificate_setting(
    fake_wallet, settings, tmp_path
):
    fake_wallet.apns.faults.refuse_certificate = True
    with pytest.raises(WalletCredentialsError, match="LOYALTY_APPLE_PASS_CERT_FILE") as refused:
        wallet_clients().apple.push(DEVICE)
    assert "(BadCertificate)" in str(refused.value)

    fake_wallet.apns.faults.refuse_certificate = False
    other = generate_keys(tmp_path / "other-ca")  # a certificate APNs never issued
    settings.LOYALTY_APPLE_PASS_CERT_FILE = str(other.pass_cert_file)
    settings.LOYALTY_APPLE_PASS_KEY_FILE = str(other.pass_key_file)
    with pytest.raises(TransientWalletError, match="closed the TLS handshake .*not trusted"):
        wallet_clients().apple.push(DEVICE)
    assert [p.status for p in fake_wallet.apns.pushes] == [403]


def test_certificate__missing_file_is_not_configured_and_names_the_setting(fake_wallet, settings):
    settings.LOYALTY_APPLE_PASS_CERT_FILE = ""
    assert wallet_clients().apple_problem == "not configured (set LOYALTY_APPLE_PASS_CERT_FILE)"
    settings.LOYALTY_APPLE_PASS_CERT_FILE = str(fake_wallet.keys.pass_key_file)  # not a cert
    problem = wallet_clients().apple_problem
    assert problem.startswith("pass type certificate or key unusable for APNs")
    assert "PRIVATE KEY" not in problem


def test_token_auth__refused_for_the_pass_topic_stops_apple_and_says_use_the_certificate(
    frozen_now, fake_wallet, settings, program_factory, card_factory, register_device
):
    """Some teams' provider tokens are refused for pass topics: the fake reproduces it."""
    settings.LOYALTY_APPLE_APNS_AUTH = "token"
    fake_wallet.apns.faults.refuse_token_for_pass_topic = True
    program = program_factory()
    for i in range(3):
        register_device(card_factory(program, apple=f"a-{i}"))

    result = sync_wallet_passes()

    assert [(p.auth, p.status, p.reason) for p in fake_wallet.apns.pushes] == [
        ("token", 400, "TopicDisallowed")
    ]
    assert result["wallets"]["apple"]["skipped"] == 3
    assert result["stopped"] == [
        "apple: credentials refused: APNs: TopicDisallowed for topic pass.com.example.loyalty: "
        "APNs may refuse provider tokens for pass topics; use the pass type certificate "
        "(LOYALTY_APPLE_APNS_AUTH=certificate)"
    ]

    settings.LOYALTY_APPLE_APNS_AUTH = "certificate"  # the fix the line names
    again = sync_wallet_passes()
    assert again["wallets"]["apple"]["synced"] == 3 and again["stopped"] == []
    assert {p.auth for p in fake_wallet.apns.pushes[1:]} == {"certificate"}


def test_token_auth__provider_token_reused_for_50_minutes_then_renewed_and_accepted(
    frozen_now, fake_wallet, settings
):
    settings.LOYALTY_APPLE_APNS_AUTH = "token"
    apns = wallet_clients().apple
    assert apns is not None and apns.auth == "token"

    first = apns.provider_token()
    assert apns.push(DEVICE) == SENT
    with time_machine.travel(frozen_now + timedelta(minutes=49), tick=False):
        assert apns.provider_token() == first
        assert apns.push(DEVICE) == SENT
    with time_machine.travel(frozen_now + timedelta(minutes=51), tick=False):
        renewed = apns.provider_token()
        assert apns.push(DEVICE) == SENT

    assert renewed != first
    assert [(p.status, p.auth, p.push_type) for p in fake_wallet.apns.pushes] == [
        (200, "token", "background")
    ] * 3


def test_token_auth__expired_provider_token__renewed_once_however_many_pushes_it_refused(
    frozen_now, fake_wallet, settings
):
    """APNs answers TooManyProviderTokenUpdates to a burst of renewals: 32 pushes in flight
    refused with one token renew it once, the others take the renewed token."""
    settings.LOYALTY_APPLE_APNS_AUTH = "token"
    apns = wallet_clients().apple
    assert apns is not None
    old = apns.provider_token()
    with time_machine.travel(frozen_now + timedelta(minutes=2), tick=False):
        fake_wallet.apns.faults.expire_tokens_issued_before = frozen_now.timestamp() + 1

        assert apns.push(DEVICE) == SENT  # refused, renewed, sent again
        renewed = apns.provider_token()
        # what the pushes still in flight with the old token ask after their 403
        late = [apns.provider_token(refused=old) for _ in range(31)]

    assert renewed != old and set(late) == {renewed}
    assert [(p.status, p.reason) for p in fake_wallet.apns.pushes] == [
        (403, "ExpiredProviderToken"),
        (200, ""),
    ]


def test_wrong_topic__is_a_credentials_error_naming_the_setting(fake_wallet, settings):
    settings.LOYALTY_APPLE_PASS_TYPE_ID = "pass.com.example.other"
    apns = wallet_clients().apple
    assert apns is not None

    with pytest.raises(
        WalletCredentialsError, match="TopicDisallowed for topic pass.com.example.other"
    ):
        apns.push(DEVICE)


def test_bad_apns_auth_setting__is_not_configured(fake_wallet, settings):
    settings.LOYALTY_APPLE_APNS_AUTH = "both"
    assert wallet_clients().apple_problem == (
        "LOYALTY_APPLE_APNS_AUTH is 'both': certificate or token"
    )


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
