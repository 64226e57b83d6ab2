"""End to end: the hourly wallet sync on a real qcluster, configured only by its environment.

The cluster process gets the LOYALTY_* variables an operator would set (key files, APNs
key, CA); the wallet fakes run in this test process and see what the cluster sends.
"""

import pytest

from devkit.waiting import wait_for_run
from jobs.models import JobRun
from jobs.runner import enqueue_job
from loyalty.models import WalletSyncState

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_hourly_sync_on_a_cluster__both_wallets_updated_from_environment_settings(
    qcluster, fake_wallet, program_factory, card_factory, register_device
):
    program = program_factory()
    card = card_factory(program, points=70, google="issuer.e2e-1", apple="serial-e2e-1")
    device = register_device(card)
    fake_wallet.google.deleted.add("issuer.e2e-1")
    program.google_wallet_class_id = "issuer.points"
    program.save()
    run = enqueue_job("loyalty.sync_wallet_passes", trigger=JobRun.Trigger.COMMAND)
    qcluster.start(["default"], env=fake_wallet.settings())

    run = wait_for_run(run.pk, timeout_seconds=90)

    assert run.status == JobRun.Status.SUCCEEDED, run.error
    assert run.result["wallets"]["google"]["recreated"] == 1
    assert run.result["wallets"]["apple"]["devices_pushed"] == 1
    assert len(fake_wallet.google.token_requests) == 1
    assert fake_wallet.google.objects["issuer.e2e-1"]["loyaltyPoints"]["balance"] == {"int": 70}
    assert [(p.device_token, p.status) for p in fake_wallet.apns.pushes] == [
        (device.push_token, 200)
    ]
    assert set(WalletSyncState.objects.filter(card=card).values_list("wallet", "failures")) == {
        ("google", 0),
        ("apple", 0),
    }
