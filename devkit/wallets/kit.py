"""Both wallet fakes and their keys in one object, and the LOYALTY_* settings pointing at them."""

from pathlib import Path

from devkit.wallets.apns import ApnsFaults, FakeApns
from devkit.wallets.google import FakeGoogleWallet, Faults
from devkit.wallets.keys import APNS_KEY_ID, PASS_TYPE_ID, SERVICE_ACCOUNT_EMAIL, TEAM_ID, FakeKeys


class WalletFakes:
    """`with WalletFakes(keys) as fakes:` runs the fake Google Wallet and the fake APNs.

    `fakes.settings()` are the settings (or environment variables) that make the real
    clients talk to them: the service account key file names the fake's token_uri,
    and the fake APNs' TLS certificate is trusted through LOYALTY_APPLE_APNS_CA_FILE.
    """

    def __init__(
        self,
        keys: FakeKeys,
        *,
        google_faults: Faults | None = None,
        apns_faults: ApnsFaults | None = None,
        web_service_url: str = "https://wallet.example.com/passkit/",
    ) -> None:
        self.keys = keys
        self.web_service_url = web_service_url
        self.google = FakeGoogleWallet(
            public_key_pem=keys.service_account_public_pem,
            client_email=SERVICE_ACCOUNT_EMAIL,
            faults=google_faults,
        )
        self.apns = FakeApns(
            topic=PASS_TYPE_ID,
            team_id=TEAM_ID,
            key_id=APNS_KEY_ID,
            public_key_pem=keys.apns_public_pem,
            cert_file=keys.tls_cert_file,
            key_file=keys.tls_key_file,
            client_ca_files=(keys.ca_file, keys.wwdr_file),
            faults=apns_faults,
        )
        self.service_account_file: Path | None = None

    def start(self) -> "WalletFakes":
        self.google.start()
        self.apns.start()
        self.service_account_file = self.keys.write_service_account(token_uri=self.google.token_uri)
        return self

    def stop(self) -> None:
        self.google.stop()
        self.apns.stop()

    def __enter__(self) -> "WalletFakes":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def settings(self) -> dict[str, str]:
        """LOYALTY_* names and values (Django settings or environment variables)."""
        keys = self.keys
        return {
            "LOYALTY_GOOGLE_WALLET_URL": self.google.base_url,
            "LOYALTY_GOOGLE_SERVICE_ACCOUNT_FILE": str(self.service_account_file),
            "LOYALTY_APPLE_PASS_TYPE_ID": PASS_TYPE_ID,
            "LOYALTY_APPLE_TEAM_ID": TEAM_ID,
            "LOYALTY_APPLE_PASS_CERT_FILE": str(keys.pass_cert_file),
            "LOYALTY_APPLE_PASS_KEY_FILE": str(keys.pass_key_file),
            "LOYALTY_APPLE_WWDR_CERT_FILE": str(keys.wwdr_file),
            "LOYALTY_APPLE_APNS_KEY_FILE": str(keys.apns_key_file),
            "LOYALTY_APPLE_APNS_KEY_ID": APNS_KEY_ID,
            "LOYALTY_APPLE_APNS_URL": self.apns.base_url,
            "LOYALTY_APPLE_APNS_CA_FILE": str(keys.ca_file),
            "LOYALTY_APPLE_WEB_SERVICE_URL": self.web_service_url,
        }
