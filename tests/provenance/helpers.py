"""What the provenance tests share: certificates made to order, a "Sora" original that carries
its own Content Credentials, c2pa's raw manifest store, and a video's decoded content."""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apps.provenance import Credentials, local_ca, sdk

EMAIL_PROTECTION = ExtendedKeyUsageOID.EMAIL_PROTECTION


@dataclass(frozen=True)
class IssuingCA:
    """A CA that issues signing certificates with whatever flaw a test wants."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def make(cls, name: str = "Test CA") -> "IssuingCA":
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(sign=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(
        self,
        *,
        key: Any = None,
        ekus: list[x509.ObjectIdentifier] | None = None,
        ca: bool = False,
        days: tuple[int, int] = (-1, 365),
        name: str = "Test signer",
        organization: str = "Test operator",
    ) -> tuple[str, Any]:
        """(chain PEM: signer then CA, signer's private key object)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, name),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days[0]))
            .not_valid_after(now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(key_usage(sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if ekus is None:
            ekus = [EMAIL_PROTECTION]
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        return certificate.public_bytes(serialization.Encoding.PEM).decode() + self.pem, key


def must(credentials: Credentials | None) -> Credentials:
    """The credentials a call had to find."""
    assert credentials is not None
    return credentials


def key_usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not sign,
        crl_sign=not sign,
        encipher_only=False,
        decipher_only=False,
    )


def pkcs8(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def sign_like_sora(clip: Path, dest: Path) -> Path:
    """`clip` as Sora would hand it out: signed by its maker (its own CA here), a new creation
    by a generative model."""
    chain, key = local_ca.split_bundle(local_ca.make_pair())
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None)
    with (
        sdk.context(claim_generator={"name": "Sora", "version": "2"}) as context,
        c2pa.Signer.from_info(info) as signer,
        c2pa.Builder({"title": "sora.mp4"}, context) as builder,
        clip.open("rb") as source,
        dest.open("w+b") as signed,
    ):
        builder.set_intent(
            c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA
        )
        builder.sign(signer, "video/mp4", source, signed)
    return dest


def manifest_store(path: Path, **settings: Any) -> dict[str, Any]:
    """c2pa's whole manifest store of `path`, as `c2pa.Reader` gives it."""
    config = sdk.sdk_settings()
    config["trust"].update(settings.get("trust", {}))
    with (
        c2pa.Context.from_dict(config) as context,
        path.open("rb") as stream,
        c2pa.Reader("video/mp4", stream, None, context) as reader,
    ):
        store: dict[str, Any] = json.loads(reader.json())
        store["validation_state"] = reader.get_validation_state()
        return store


def active_manifest(store: dict[str, Any]) -> dict[str, Any]:
    manifest: dict[str, Any] = store["manifests"][store["active_manifest"]]
    return manifest


def actions_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        action
        for assertion in manifest["assertions"]
        if assertion["label"].startswith("c2pa.actions")
        for action in assertion["data"]["actions"]
    ]


@dataclass(frozen=True)
class Content:
    """What a player gets out of a video: every decoded frame and every packet, hashed."""

    video: dict[str, Any]
    audio: dict[str, Any]
    frames: tuple[str, ...]  # hashes of each decoded frame's pixels
    video_packets: tuple[tuple[int | None, str], ...]  # (pts, hash of bytes)
    audio_packets: tuple[tuple[int | None, str], ...]


def decoded_content(path: Path) -> Content:
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        describe = {
            "video": {
                "codec": video.codec_context.name,
                "size": (video.width, video.height),
                "rate": video.average_rate,
                "duration": float(video.duration * video.time_base) if video.duration else None,
            },
            "audio": {"codec": audio.codec_context.name, "rate": audio.rate},
        }
        frames = tuple(
            hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest()
            for frame in container.decode(video=0)
        )
    packets: dict[str, list[tuple[int | None, str]]] = {"video": [], "audio": []}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size:
                packets[packet.stream.type].append(
                    (packet.pts, hashlib.sha256(bytes(packet)).hexdigest())
                )
    return Content(
        video=describe["video"],
        audio=describe["audio"],
        frames=frames,
        video_packets=tuple(packets["video"]),
        audio_packets=tuple(packets["audio"]),
    )


def remux_faststart(source: Path, dest: Path) -> Path:
    """The same streams with the index (moov) before the samples, as Sora exports them."""
    with (
        av.open(str(source)) as inp,
        av.open(str(dest), "w", format="mp4", options={"movflags": "faststart"}) as out,
    ):
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dest
