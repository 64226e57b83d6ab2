"""Throwaway keys and certificates for the local wallet fakes (tests, demo, benchmark).

Shaped like the real ones: a Google service account key (RSA, JSON key file), a root
CA standing in for Apple's, a WWDR intermediate and a pass type ID certificate under
it, an APNs `.p8` key (EC P-256) and a TLS certificate for the fake APNs on 127.0.0.1.
"""

import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TEAM_ID = "FAKETEAM01"
PASS_TYPE_ID = "pass.com.example.loyalty"
APNS_KEY_ID = "FAKEKEY001"
SERVICE_ACCOUNT_EMAIL = "wallet-sync@fake-project.iam.gserviceaccount.com"


@dataclass(frozen=True)
class FakeKeys:
    """Paths of the generated files, and the public halves the fakes verify with."""

    directory: Path
    service_account_private_pem: str
    service_account_public_pem: str
    ca_file: Path
    wwdr_file: Path
    pass_cert_file: Path
    pass_key_file: Path
    apns_key_file: Path
    apns_public_pem: str
    tls_cert_file: Path
    tls_key_file: Path

    def service_account_info(self, *, token_uri: str) -> dict[str, str]:
        """A key file's content, as Google's console downloads it, with our token endpoint."""
        return {
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": "fake-key-1",
            "private_key": self.service_account_private_pem,
            "client_email": SERVICE_ACCOUNT_EMAIL,
            "client_id": "100000000000000000001",
            "token_uri": token_uri,
        }

    def write_service_account(self, *, token_uri: str) -> Path:
        path = self.directory / "service-account.json"
        path.write_text(json.dumps(self.service_account_info(token_uri=token_uri)))
        return path


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _certificate(
    *, subject: x509.Name, key, issuer: x509.Name, issuer_key, ca: bool, extensions=()
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # What strict X.509 checking (Python 3.13's default TLS context) asks of a chain.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if "uid" in extra:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, extra["uid"]))
    return x509.Name(attributes)


def _tls_certificate(key, *, issuer: x509.Name, issuer_key) -> x509.Certificate:
    """The fake APNs' server certificate: localhost and 127.0.0.1."""
    return _certificate(
        subject=_name("localhost"),
        key=key,
        issuer=issuer,
        issuer_key=issuer_key,
        ca=False,
        extensions=[
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ],
    )


def generate_keys(directory: Path) -> FakeKeys:
    """Write every key and certificate under `directory` (a fresh set each call)."""
    directory.mkdir(parents=True, exist_ok=True)
    rsa_key = lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)  # noqa: E731
    service_account = rsa_key()
    root_key, wwdr_key, tls_key = (ec.generate_private_key(ec.SECP256R1()) for _ in "123")
    pass_key = rsa_key()  # Apple's pass type ID certificates are RSA
    apns_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("Fake Apple Root CA")
    root = _certificate(
        subject=root_name, key=root_key, issuer=root_name, issuer_key=root_key, ca=True
    )
    wwdr_name = _name("Fake Apple Worldwide Developer Relations CA")
    wwdr = _certificate(
        subject=wwdr_name, key=wwdr_key, issuer=root_name, issuer_key=root_key, ca=True
    )
    pass_cert = _certificate(
        subject=_name(f"Pass Type ID: {PASS_TYPE_ID}", uid=PASS_TYPE_ID),
        key=pass_key,
        issuer=wwdr_name,
        issuer_key=wwdr_key,
        ca=False,
    )
    tls = _tls_certificate(tls_key, issuer=root_name, issuer_key=root_key)
    files = {
        "ca.pem": root.public_bytes(serialization.Encoding.PEM),
        "wwdr.pem": wwdr.public_bytes(serialization.Encoding.PEM),
        "pass-cert.pem": pass_cert.public_bytes(serialization.Encoding.PEM),
        "pass-key.pem": _pem(pass_key),
        "AuthKey_FAKEKEY001.p8": _pem(apns_key),
        "apns-tls-cert.pem": tls.public_bytes(serialization.Encoding.PEM),
        "apns-tls-key.pem": _pem(tls_key),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return FakeKeys(
        directory=directory,
        service_account_private_pem=_pem(service_account).decode(),
        service_account_public_pem=_public_pem(service_account),
        ca_file=directory / "ca.pem",
        wwdr_file=directory / "wwdr.pem",
        pass_cert_file=directory / "pass-cert.pem",
        pass_key_file=directory / "pass-key.pem",
        apns_key_file=directory / "AuthKey_FAKEKEY001.p8",
        apns_public_pem=_public_pem(apns_key),
        tls_cert_file=directory / "apns-tls-cert.pem",
        tls_key_file=directory / "apns-tls-key.pem",
    )
