"""Apple Wallet passes: pass.json for a card, signed into a .pkpass with the pass type certificate.

The signature is a detached PKCS#7 (CMS) signature of manifest.json with Apple's WWDR
certificate included (cryptography); a pass's authentication token is an HMAC of its
serial number, never stored (why not django-walletpass: docs/loyalty.md).
"""

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from loyalty.conf import loyalty_settings, read_setting_file
from loyalty.exceptions import WalletNotConfigured

ASSETS = Path(__file__).resolve().parent.parent / "passkit_assets"
_TOKEN_SALT = "loyalty.apple_pass.authentication_token"


@dataclass(frozen=True, kw_only=True)
class PassContent:
    serial_number: str
    number: str
    points_balance: int
    stamp_count: int
    organization_name: str
    #: A deactivated card's pass is void (pass.json `voided`: Wallet shows it as unusable).
    voided: bool = False
    #: The token the pass was issued with ("": a new pass, derived from SECRET_KEY). Apple:
    #: "Don't change the authentication token in an update", so an update keeps the token
    #: the device presented, also one that matched a SECRET_KEY_FALLBACKS key.
    authentication_token: str = ""


def authentication_token(serial_number: str, *, secret: str | None = None) -> str:
    """The pass's ApplePass token: not stored, derived from SECRET_KEY (rotation: FALLBACKS)."""
    return salted_hmac(_TOKEN_SALT, serial_number, secret=secret, algorithm="sha256").hexdigest()


def token_matches(serial_number: str, token: str) -> bool:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(
        constant_time_compare(authentication_token(serial_number, secret=s), token) for s in secrets
    )


class PassSigner:
    """The pass type certificate, its key and the WWDR certificate, loaded once."""

    def __init__(self, *, cert_pem: bytes, key_pem: bytes, wwdr_pem: bytes, password: str = ""):
        try:
            self.certificate = x509.load_pem_x509_certificate(cert_pem)
            self.key = serialization.load_pem_private_key(
                key_pem, password=password.encode() or None
            )
            self.wwdr = x509.load_pem_x509_certificate(wwdr_pem)
        except (ValueError, TypeError) as exc:
            raise WalletNotConfigured(f"pass certificate or key unusable: {exc}") from None

    @classmethod
    def from_settings(cls) -> "PassSigner":
        return cls(
            cert_pem=read_setting_file("APPLE_PASS_CERT_FILE"),
            key_pem=read_setting_file("APPLE_PASS_KEY_FILE"),
            wwdr_pem=read_setting_file("APPLE_WWDR_CERT_FILE"),
            password=loyalty_settings.APPLE_PASS_KEY_PASSWORD,
        )

    def sign(self, manifest: bytes) -> bytes:
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(manifest)
            .add_signer(self.certificate, self.key, hashes.SHA256())  # type: ignore[arg-type]
            .add_certificate(self.wwdr)
            .sign(
                serialization.Encoding.DER,
                [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
            )
        )


def pass_json(content: PassContent) -> dict:
    """A store card showing the points and stamps, updatable through our web service."""
    return {
        "formatVersion": 1,
        "passTypeIdentifier": loyalty_settings.APPLE_PASS_TYPE_ID,
        "teamIdentifier": loyalty_settings.APPLE_TEAM_ID,
        "serialNumber": content.serial_number,
        "authenticationToken": content.authentication_token
        or authentication_token(content.serial_number),
        "webServiceURL": loyalty_settings.APPLE_WEB_SERVICE_URL,
        "organizationName": content.organization_name,
        "description": f"{content.organization_name} loyalty card",
        "storeCard": {
            "primaryFields": [
                {
                    "key": "points",
                    "label": "Points",
                    "value": content.points_balance,
                    "changeMessage": "Your balance is now %@ points",
                }
            ],
            "secondaryFields": [{"key": "stamps", "label": "Stamps", "value": content.stamp_count}],
            "auxiliaryFields": [{"key": "number", "label": "Card", "value": content.number}],
        },
        "barcodes": [
            {
                "format": "PKBarcodeFormatQR",
                "message": content.number,
                "messageEncoding": "iso-8859-1",
            }
        ],
        **({"voided": True} if content.voided else {}),
    }


def build_pkpass(content: PassContent, *, signer: PassSigner) -> bytes:
    """The signed .pkpass (zip) of a card's current state."""
    files = {"pass.json": json.dumps(pass_json(content), indent=1).encode()}
    for image in sorted(ASSETS.glob("*.png")):
        files[image.name] = image.read_bytes()
    manifest = json.dumps(
        {name: hashlib.sha1(data).hexdigest() for name, data in files.items()}, sort_keys=True
    ).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("manifest.json", manifest)
        archive.writestr("signature", signer.sign(manifest))
    return buffer.getvalue()
