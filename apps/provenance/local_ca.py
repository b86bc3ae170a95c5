"""A local test CA and signer, so signing works on a fresh machine without an operator's keys.

Outside production, when no certificate is configured, the first use makes an EC P-256 CA and
a signing certificate it issues, and keeps both with the signer's private key in one file,
`<C2PA_LOCAL_DIR>/local-signer.pem`. No verifier trusts that CA: results signed with it read
as valid but untrusted (`signingCredential.untrusted`). Delete the file for a new pair.

c2pa checks certificate profiles strictly (it refuses a self-signed signer, one without an
extended key usage, or a CA), so the pair follows the C2PA specification: a CA with basic
constraints and key identifiers, and a signer that is not a CA, with the digitalSignature key
usage, the emailProtection extended key usage (the one every c2pa verifier accepts by
default) and subject and authority key identifiers.

Several worker processes may start at once on a fresh machine: each makes its own pair in a
temporary file and links it into place, which fails if another got there first. The winner's
file is complete the moment it appears, so nobody ever reads half a pair or a key from one
process with the certificate of another.
"""

import contextlib
import datetime as dt
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BUNDLE_NAME = "local-signer.pem"
CA_NAME = "Unmark local test CA (NOT TRUSTED)"
SIGNER_NAME = "Unmark local test signer (NOT TRUSTED)"
ORGANIZATION = "Unmark local development (untrusted)"
# Long enough never to expire under a developer; it signs nothing anyone should trust.
VALID_DAYS = 3650


def local_signing_keys(folder: Path) -> tuple[bytes, bytes]:
    """The local signer's certificate chain (signer first, then the CA) and private key, as
    PEM; made on first use."""
    path = folder / BUNDLE_NAME
    if not path.exists():
        _create(path)
    return split_bundle(path.read_bytes())


def split_bundle(bundle: bytes) -> tuple[bytes, bytes]:
    """(certificate chain, private key) from a bundle's PEM blocks, in the bundle's order."""
    chain: list[bytes] = []
    key: list[bytes] = []
    for block in bundle.split(b"-----BEGIN ")[1:]:
        pem = b"-----BEGIN " + block.strip() + b"\n"
        (chain if block.startswith(b"CERTIFICATE-----") else key).append(pem)
    return b"".join(chain), b"".join(key)


def make_pair() -> bytes:
    """A new CA and signer, as one PEM bundle: signer certificate, CA certificate, signer key."""
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(CA_NAME)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signer=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name(SIGNER_NAME))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signer=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return (
        signer.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp makes the file readable by its owner only, as a private key's file should be.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".local-signer-", suffix=".pem")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(make_pair())
            out.flush()
            os.fsync(out.fileno())
        # A hard link never replaces an existing file: whoever links first wins, complete.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )
