"""Which certificate and key sign results, and whether c2pa will accept them.

Production signs with the operator's certificate chain and EC P-256 private key
(`C2PA_CERT_CHAIN`, `C2PA_PRIVATE_KEY`, or their `_FILE` variants). Without them, local and
test runs use the local test CA (`local_ca`). Everything is checked here with `cryptography`
first, so the usual mistakes (a key that belongs to another certificate, an expired or CA
certificate, an RSA key, the chain in the wrong order) are named in plain words before c2pa
would refuse them with a terse error halfway through a job.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.provenance import local_ca
from apps.provenance.sdk import CLAIM_SIGNING_EKUS


@dataclass(frozen=True)
class SigningKeys:
    cert_chain: bytes  # PEM: the signing certificate first, then its intermediates
    private_key: bytes  # PEM, PKCS#8 (what c2pa reads), whatever form it was given in
    local: bool  # the local test CA's, which no verifier trusts
    timestamp_url: str  # an RFC 3161 authority, or "" for none


def load_signing_keys() -> SigningKeys:
    """The keys to sign with, checked; raises `ImproperlyConfigured` saying what is wrong."""
    chain, key = settings.C2PA_CERT_CHAIN, settings.C2PA_PRIVATE_KEY
    timestamp_url = settings.C2PA_TIMESTAMP_URL
    if chain or key:
        if not (chain and key):
            missing = "C2PA_PRIVATE_KEY" if chain else "C2PA_CERT_CHAIN"
            raise ImproperlyConfigured(
                f"Content Credentials: {missing} (or {missing}_FILE) is not set; the "
                "certificate chain and its private key go together."
            )
        cert_chain, private_key = checked_pem(
            _unescape(chain),
            _unescape(key),
            chain_from="C2PA_CERT_CHAIN",
            key_from="C2PA_PRIVATE_KEY",
        )
        return SigningKeys(cert_chain, private_key, local=False, timestamp_url=timestamp_url)
    if settings.PRODUCTION:
        raise ImproperlyConfigured(
            "Content Credentials: signing is on (C2PA_SIGNING) but no signing certificate is "
            "set. Set C2PA_CERT_CHAIN and C2PA_PRIVATE_KEY (or their _FILE variants) to your "
            "certificate chain and EC P-256 private key, or set C2PA_SIGNING=0 to deliver "
            "results without Content Credentials."
        )
    folder = Path(settings.C2PA_LOCAL_DIR)
    try:
        chain_pem, key_pem = local_ca.local_signing_keys(folder)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"Content Credentials: the local test signer in {folder} cannot be made or read "
            f"({exc.strerror or exc})."
        ) from exc
    where = str(folder / local_ca.BUNDLE_NAME)
    cert_chain, private_key = checked_pem(chain_pem, key_pem, chain_from=where, key_from=where)
    return SigningKeys(cert_chain, private_key, local=True, timestamp_url=timestamp_url)


def checked_pem(
    chain_pem: bytes | str, key_pem: bytes | str, *, chain_from: str, key_from: str
) -> tuple[bytes, bytes]:
    """(chain, PKCS#8 key) once both are known to suit C2PA signing; `chain_from` and
    `key_from` name where they came from, for the messages."""
    chain_bytes = chain_pem.encode() if isinstance(chain_pem, str) else chain_pem
    key_bytes = key_pem.encode() if isinstance(key_pem, str) else key_pem
    try:
        certificates = x509.load_pem_x509_certificates(chain_bytes)
    except ValueError:
        raise _problem(
            f"{chain_from} holds no PEM certificate (it should start with "
            "-----BEGIN CERTIFICATE-----)."
        ) from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except TypeError:
        raise _problem(
            f"the private key in {key_from} is encrypted with a password; give it unencrypted "
            "(protect it with file permissions or your secret store instead)."
        ) from None
    except ValueError:
        raise _problem(
            f"{key_from} holds no PEM private key (it should start with "
            "-----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)."
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _problem(
            f"the private key in {key_from} must be an EC P-256 key (signing uses ES256), "
            f"not {_describe(key)}."
        )
    signer = certificates[0]
    if signer.public_key() != key.public_key():
        raise _problem(
            f"the private key in {key_from} does not belong to the first certificate of "
            f"{chain_from}. The signing certificate must come first, then its intermediates."
        )
    _check_profile(signer, chain_from)
    return chain_bytes, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _check_profile(certificate: x509.Certificate, chain_from: str) -> None:
    """The parts of C2PA's certificate profile people get wrong, as c2pa checks them."""
    subject = certificate.subject.rfc4514_string()
    now = dt.datetime.now(dt.UTC)
    if certificate.not_valid_before_utc > now:
        raise _problem(
            f"the signing certificate in {chain_from} ({subject}) is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC."
        )
    if certificate.not_valid_after_utc <= now:
        raise _problem(
            f"the signing certificate in {chain_from} ({subject}) expired on "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}."
        )
    if certificate.issuer == certificate.subject:
        raise _problem(
            f"the signing certificate in {chain_from} ({subject}) is self-signed; C2PA needs "
            "one issued by a certificate authority."
        )
    constraints = _extension(certificate, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise _problem(
            f"the first certificate in {chain_from} ({subject}) is a CA certificate; it must "
            "be the signing certificate, followed by its intermediates."
        )
    usage = _extension(certificate, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise _problem(
            f"the signing certificate in {chain_from} ({subject}) does not allow digital "
            "signatures (key usage digitalSignature)."
        )
    purposes = _extension(certificate, x509.ExtendedKeyUsage)
    allowed = {x509.ObjectIdentifier(oid) for oid in CLAIM_SIGNING_EKUS}
    if (
        purposes is None
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in purposes
        or not allowed.intersection(purposes)
    ):
        raise _problem(
            f"the signing certificate in {chain_from} ({subject}) is not made for signing "
            "content: its extended key usage must include emailProtection, documentSigning "
            "or C2PA claim signing (and not anyExtendedKeyUsage)."
        )


def _extension[T: x509.ExtensionType](certificate: x509.Certificate, kind: type[T]) -> T | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _unescape(pem: str) -> str:
    """A PEM pasted into one line of an env file, with literal `\\n`s, is still that PEM."""
    return pem.replace("\\n", "\n") if "\n" not in pem.strip() else pem


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC key on {key.curve.name}"
    return f"an {type(key).__name__.removesuffix('PrivateKey')} key"


def _problem(detail: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Content Credentials: {detail[0].upper()}{detail[1:]}")
