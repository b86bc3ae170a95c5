"""Signing keys: the local test CA, the operator's keys in production, and the start-up check."""

import multiprocessing
import os
import runpy
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.core.exceptions import ImproperlyConfigured

import apps.provenance
from apps.provenance import check_signing_keys, local_ca, read_credentials, sign_result
from apps.provenance.apps import ProvenanceConfig
from apps.provenance.keys import load_signing_keys
from tests.provenance.helpers import IssuingCA, must, pkcs8
from tests.provenance.race import make_local_keys_slowly

ROOT = Path(__file__).resolve().parent.parent.parent
NOT_A_KEY = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def production(settings):
    settings.PRODUCTION = True
    return settings


@pytest.fixture(scope="module")
def operator_ca() -> IssuingCA:
    return IssuingCA.make("Operator CA")


def configure(settings, chain: str, key: object | str) -> None:
    settings.C2PA_CERT_CHAIN = chain
    settings.C2PA_PRIVATE_KEY = key if isinstance(key, str) else pkcs8(key)


# --- The local test CA -----------------------------------------------------------------------


def test_outside_production_a_local_signer_is_made_on_first_use_and_kept(settings, tmp_path):
    settings.C2PA_LOCAL_DIR = tmp_path / "c2pa"

    first = load_signing_keys()
    again = load_signing_keys()

    assert first.local
    assert (first.cert_chain, first.private_key) == (again.cert_chain, again.private_key)
    bundle = tmp_path / "c2pa" / "local-signer.pem"
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["local-signer.pem"]


def test_the_local_pair_follows_the_c2pa_certificate_profile_and_says_it_is_untrusted():
    chain, key_pem = local_ca.split_bundle(local_ca.make_pair())
    signer, ca = x509.load_pem_x509_certificates(chain)
    key = serialization.load_pem_private_key(key_pem, password=None)

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert signer.public_key() == key.public_key()
    assert "NOT TRUSTED" in signer.subject.rfc4514_string()
    assert "NOT TRUSTED" in ca.subject.rfc4514_string()
    assert signer.issuer == ca.subject
    signer.verify_directly_issued_by(ca)
    ext = signer.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.EMAIL_PROTECTION
    ]
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


def test_processes_starting_together_on_a_fresh_machine_share_one_complete_pair(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, answers = context.Barrier(4), context.Queue()
    processes = [
        context.Process(target=make_local_keys_slowly, args=(str(tmp_path), start, answers))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    pairs = [answers.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert all(process.exitcode == 0 for process in processes)
    assert len(set(pairs)) == 1
    chain, key_pem = pairs[0]
    signer = x509.load_pem_x509_certificates(chain)[0]
    assert signer.public_key() == serialization.load_pem_private_key(key_pem, None).public_key()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local-signer.pem"]


# --- Production: the operator's keys ---------------------------------------------------------


def test_production_without_keys_refuses_to_start_saying_what_to_set(production):
    with pytest.raises(ImproperlyConfigured) as refusal:
        check_signing_keys()

    message = str(refusal.value)
    assert "C2PA_CERT_CHAIN and C2PA_PRIVATE_KEY" in message
    assert "_FILE" in message
    assert "C2PA_SIGNING=0" in message


def test_production_never_falls_back_to_the_local_signer(production, tmp_path):
    production.C2PA_LOCAL_DIR = tmp_path / "c2pa"

    with pytest.raises(ImproperlyConfigured):
        load_signing_keys()

    assert not (tmp_path / "c2pa").exists()


def test_the_process_stops_at_start_when_the_app_is_ready(production):
    config = ProvenanceConfig("apps.provenance", apps.provenance)

    with pytest.raises(ImproperlyConfigured, match="no signing certificate is set"):
        config.ready()


def test_with_signing_off_production_needs_no_keys(production):
    production.C2PA_SIGNING = False

    check_signing_keys()


def test_production_signs_with_the_operators_keys(production, operator_ca, cleaned, tmp_path):
    chain, key = operator_ca.issue(name="Unmark result signing", organization="Operator Ltd")
    configure(production, chain, key)

    check_signing_keys()
    credentials = must(
        sign_result(
            cleaned, tmp_path / "signed.mp4", original=None, original_title="Sora", edited_by="x"
        )
    )

    assert not load_signing_keys().local
    assert credentials.signed_by == "Unmark result signing"
    assert credentials.issuer == "Operator Ltd"
    assert credentials.problems == ("signingCredential.untrusted",)
    production.C2PA_TRUST_ANCHORS = operator_ca.pem
    assert must(read_credentials(tmp_path / "signed.mp4")).trusted


@pytest.mark.parametrize(
    "eku", ["1.3.6.1.4.1.62558.2.1", "1.3.6.1.5.5.7.3.36"], ids=["c2pa-claim", "document"]
)
def test_certificates_made_for_content_signing_are_accepted(production, operator_ca, eku):
    chain, key = operator_ca.issue(ekus=[x509.ObjectIdentifier(eku)])
    configure(production, chain, key)

    check_signing_keys()


def test_a_key_in_sec1_form_or_pasted_on_one_line_is_accepted(production, operator_ca):
    chain, key = operator_ca.issue()
    sec1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    configure(production, chain.replace("\n", "\\n"), sec1)

    check_signing_keys()
    assert load_signing_keys().private_key.startswith(b"-----BEGIN PRIVATE KEY-----")


def _broken(operator_ca: IssuingCA, case: str) -> tuple[str, object | str]:
    chain, key = operator_ca.issue()
    signer, ca = chain.split("-----END CERTIFICATE-----\n", 1)
    password = serialization.BestAvailableEncryption(b"secret")
    cases = {
        "chain-only": lambda: (chain, ""),
        "key-only": lambda: ("", key),
        "not-pem": lambda: ("hello", key),
        "not-a-key": lambda: (chain, NOT_A_KEY),
        "encrypted-key": lambda: (
            chain,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, password
            ).decode(),
        ),
        "rsa-key": lambda: (chain, rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "p384-key": lambda: operator_ca.issue(key=ec.generate_private_key(ec.SECP384R1())),
        "other-key": lambda: (chain, operator_ca.issue()[1]),
        "ca-first": lambda: (ca + signer + "-----END CERTIFICATE-----\n", key),
        "expired": lambda: operator_ca.issue(days=(-30, -1)),
        "not-yet-valid": lambda: operator_ca.issue(days=(2, 30)),
        "a-ca": lambda: operator_ca.issue(ca=True),
        "no-eku": lambda: operator_ca.issue(ekus=[]),
        "server-eku": lambda: operator_ca.issue(ekus=[ExtendedKeyUsageOID.SERVER_AUTH]),
    }
    return cases[case]()


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("chain-only", "C2PA_PRIVATE_KEY (or C2PA_PRIVATE_KEY_FILE) is not set"),
        ("key-only", "C2PA_CERT_CHAIN (or C2PA_CERT_CHAIN_FILE) is not set"),
        ("not-pem", "C2PA_CERT_CHAIN holds no PEM certificate"),
        ("not-a-key", "C2PA_PRIVATE_KEY holds no PEM private key"),
        ("encrypted-key", "is encrypted with a password"),
        ("rsa-key", "must be an EC P-256 key (signing uses ES256), not an RSA key"),
        ("p384-key", "not an EC key on secp384r1"),
        ("other-key", "does not belong to the first certificate of C2PA_CERT_CHAIN"),
        ("ca-first", "does not belong to the first certificate of C2PA_CERT_CHAIN"),
        ("expired", "expired on"),
        ("not-yet-valid", "is not valid before"),
        ("a-ca", "is a CA certificate"),
        ("no-eku", "is not made for signing content"),
        ("server-eku", "is not made for signing content"),
    ],
)
def test_broken_production_keys_stop_the_start_with_a_plain_message(
    production, operator_ca, case, words
):
    configure(production, *_broken(operator_ca, case))

    with pytest.raises(ImproperlyConfigured) as refusal:
        check_signing_keys()

    message = str(refusal.value)
    assert message.startswith("Content Credentials: ")
    assert words in message
    assert "PRIVATE KEY-----\n" not in message  # no secret in the message


# --- Settings, read from the environment -----------------------------------------------------


def run_settings(monkeypatch, tmp_path: Path, **env: str) -> dict[str, object]:
    """config/settings.py executed afresh (not the live settings) with `env` in the
    environment."""
    for name in [name for name in os.environ if name.startswith("C2PA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DJANGO_ENV", "test")
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "config" / "settings.py"))


def test_settings_default_to_signing_with_the_local_signer_under_var(monkeypatch, tmp_path):
    loaded = run_settings(monkeypatch, tmp_path)

    assert loaded["C2PA_SIGNING"] is True
    assert loaded["C2PA_LOCAL_DIR"] == tmp_path / "c2pa"
    assert loaded["C2PA_CERT_CHAIN"] == loaded["C2PA_PRIVATE_KEY"] == ""
    assert loaded["C2PA_TIMESTAMP_URL"] == loaded["C2PA_TRUST_ANCHORS"] == ""


def test_settings_read_the_keys_from_files(monkeypatch, tmp_path, operator_ca):
    chain, key = operator_ca.issue()
    (tmp_path / "chain.pem").write_text(chain)
    (tmp_path / "key.pem").write_text(pkcs8(key))

    loaded = run_settings(
        monkeypatch,
        tmp_path,
        C2PA_CERT_CHAIN_FILE=str(tmp_path / "chain.pem"),
        C2PA_PRIVATE_KEY_FILE=str(tmp_path / "key.pem"),
        C2PA_SIGNING="off",
    )

    assert loaded["C2PA_CERT_CHAIN"] == chain.strip()
    assert loaded["C2PA_PRIVATE_KEY"] == pkcs8(key).strip()
    assert loaded["C2PA_SIGNING"] is False


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"C2PA_SIGNING": "perhaps"}, "C2PA_SIGNING='perhaps' is not a boolean"),
        ({"C2PA_TIMESTAMP_URL": "ftp://tsa.example"}, "must be an http(s) address"),
        ({"C2PA_PRIVATE_KEY_FILE": "/nonexistent/key.pem"}, "C2PA_PRIVATE_KEY_FILE="),
    ],
)
def test_settings_refuse_bad_values_at_start(monkeypatch, tmp_path, env, words):
    with pytest.raises(ImproperlyConfigured) as refusal:
        run_settings(monkeypatch, tmp_path, **env)

    assert words in str(refusal.value)
