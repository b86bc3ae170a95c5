"""Signing results: what the manifest says, that it validates, and that the video is intact."""

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import av
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apps.provenance import Credentials, SigningFailed, local_ca, read_credentials, sign_result
from apps.provenance.manifest import product_version
from tests.provenance.helpers import (
    actions_of,
    active_manifest,
    decoded_content,
    manifest_store,
    must,
    sign_like_sora,
)

AI_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# All c2pa finds wrong with a result signed by the local test CA: nobody trusts that CA.
ONLY_UNTRUSTED = ["signingCredential.untrusted"]


def sign(cleaned, dest, original=None, **kwargs):
    return sign_result(
        cleaned,
        dest,
        original=original,
        original_title=kwargs.pop("original_title", "Sora video"),
        edited_by=kwargs.pop("edited_by", "SoraWatermarkCleaner"),
        **kwargs,
    )


def test_a_signed_result_validates_and_only_its_local_signer_is_untrusted(
    cleaned, original, tmp_path
):
    credentials = sign(cleaned, tmp_path / "signed.mp4", original)

    store = manifest_store(tmp_path / "signed.mp4")
    assert store["validation_state"] == "Valid"
    assert [status["code"] for status in store["validation_status"]] == ONLY_UNTRUSTED
    results = store["validation_results"]["activeManifest"]
    assert [status["code"] for status in results["failure"]] == ONLY_UNTRUSTED
    assert {status["code"] for status in results["success"]} >= {
        "claimSignature.validated",
        "claimSignature.insideValidity",
        "assertion.bmffHash.match",
    }
    assert credentials.validation_state == "Valid"
    assert credentials.problems == ("signingCredential.untrusted",)
    assert credentials.valid
    assert not credentials.trusted
    assert credentials.signed_by == "Unmark local test signer (NOT TRUSTED)"
    assert credentials.issuer == "Unmark local development (untrusted)"


def test_the_manifest_names_the_original_what_was_done_by_whom_and_that_it_is_ai_media(
    cleaned, original, tmp_path
):
    sign(cleaned, tmp_path / "signed.mp4", original, edited_by="Kie.ai")

    manifest = active_manifest(manifest_store(tmp_path / "signed.mp4"))
    assert manifest["claim_generator_info"][0]["name"] == "Unmark"
    assert manifest["claim_generator_info"][0]["version"] == product_version() != "unknown"
    [parent] = manifest["ingredients"]
    assert parent["relationship"] == "parentOf"
    assert parent["title"] == "Sora video"
    assert parent["format"] == "video/mp4"
    assert "active_manifest" not in parent  # this original had no credentials of its own
    opened, edited = actions_of(manifest)
    assert opened["action"] == "c2pa.opened"
    [link] = opened["parameters"]["ingredients"]
    assert link["url"] == f"self#jumbf=c2pa.assertions/{parent['label']}"
    assert edited["action"] == "c2pa.edited"
    assert edited["description"] == "visible watermark removed"
    assert edited["digitalSourceType"] == AI_MEDIA
    assert edited["softwareAgent"] == {"name": "Kie.ai"}
    # The samples are hashed in 4 MB chunks (a Merkle tree): what keeps signing a large video
    # from holding it in memory.
    [bmff_hash] = [a for a in manifest["assertions"] if a["label"] == "c2pa.hash.bmff.v3"]
    assert [tree["fixedBlockSize"] for tree in bmff_hash["data"]["merkle"]] == [4 * 1024 * 1024]


def test_credentials_say_what_the_product_shows(cleaned, original, tmp_path):
    credentials = sign(cleaned, tmp_path / "signed.mp4", original)

    assert credentials.claim_generator == f"Unmark/{product_version()}"
    assert credentials.actions == ("c2pa.opened", "c2pa.edited")
    assert credentials.ai_generated
    assert credentials.original_title == "Sora video"
    assert not credentials.original_had_credentials
    assert credentials.signed_at is None  # no timestamp authority configured
    assert read_credentials(tmp_path / "signed.mp4") == credentials
    assert Credentials.from_json(credentials.as_json()) == credentials


def test_an_original_with_its_own_credentials_keeps_them_inside_the_ingredient(
    cleaned, sora_original, tmp_path
):
    credentials = sign(cleaned, tmp_path / "signed.mp4", sora_original)

    store = manifest_store(tmp_path / "signed.mp4")
    manifest = active_manifest(store)
    [parent] = manifest["ingredients"]
    sora = store["manifests"][parent["active_manifest"]]
    assert sora["claim_generator_info"][0]["name"] == "Sora"
    assert [action["action"] for action in actions_of(sora)] == ["c2pa.created"]
    assert actions_of(sora)[0]["digitalSourceType"] == AI_MEDIA
    [delta] = store["validation_results"]["ingredientDeltas"]
    assert [s["code"] for s in delta["validationDeltas"]["success"]] == [
        "ingredient.manifest.validated"
    ]
    assert delta["validationDeltas"]["failure"] == []
    assert [status["code"] for status in store["validation_status"]] == ONLY_UNTRUSTED
    assert credentials.original_had_credentials


def test_the_original_may_be_an_open_stream(cleaned, sora_original, tmp_path):
    stream = io.BytesIO(sora_original.read_bytes())
    stream.seek(100)  # wherever the caller left it

    credentials = sign(cleaned, tmp_path / "signed.mp4", stream)

    assert credentials.original_had_credentials
    assert not stream.closed


def test_without_an_original_file_the_parent_is_described_by_its_title(cleaned, tmp_path):
    credentials = sign(cleaned, tmp_path / "signed.mp4", None, original_title="Sora video s_68f")

    manifest = active_manifest(manifest_store(tmp_path / "signed.mp4"))
    [parent] = manifest["ingredients"]
    assert parent == {
        "title": "Sora video s_68f",
        "format": "video/mp4",
        "relationship": "parentOf",
        "label": "c2pa.ingredient.v3",
    }
    assert [action["action"] for action in actions_of(manifest)] == ["c2pa.opened", "c2pa.edited"]
    assert credentials.valid
    assert credentials.original_title == "Sora video s_68f"
    assert not credentials.original_had_credentials


def test_an_original_whose_credentials_are_broken_is_described_by_title_and_the_job_goes_on(
    cleaned, sora_original, tmp_path, caplog
):
    broken = bytearray(sora_original.read_bytes())
    claim = broken.find(b"cbor", broken.find(b"c2pa.claim"))
    broken[claim + 4 : claim + 24] = b"\xff" * 20  # the claim's CBOR no longer parses
    (tmp_path / "broken.mp4").write_bytes(broken)

    credentials = sign(cleaned, tmp_path / "signed.mp4", tmp_path / "broken.mp4")

    assert credentials.valid
    assert credentials.original_title == "Sora video"
    assert not credentials.original_had_credentials
    assert "described by title only" in caplog.text


def test_an_original_changed_since_its_maker_signed_it_still_gives_a_valid_result(
    cleaned, sora_original, tmp_path
):
    tampered = bytearray(sora_original.read_bytes())
    tampered[-3000] ^= 0xFF  # inside the samples: its own manifest no longer matches it
    (tmp_path / "tampered.mp4").write_bytes(tampered)
    assert must(read_credentials(tmp_path / "tampered.mp4")).validation_state == "Invalid"

    credentials = sign(cleaned, tmp_path / "signed.mp4", tmp_path / "tampered.mp4")

    assert credentials.valid
    assert credentials.original_had_credentials


def test_credentials_a_provider_left_in_the_result_are_replaced_by_ours(
    cleaned, original, tmp_path
):
    stale = sign_like_sora(cleaned, tmp_path / "stale.mp4")

    sign(stale, tmp_path / "signed.mp4", original)

    store = manifest_store(tmp_path / "signed.mp4")
    assert len(store["manifests"]) == 1
    assert active_manifest(store)["claim_generator_info"][0]["name"] == "Unmark"


@pytest.mark.parametrize("fixture", ["cleaned", "cleaned_faststart"])
def test_signing_leaves_every_frame_and_sound_packet_as_it_was(
    fixture, request, sora_original, tmp_path
):
    result = request.getfixturevalue(fixture)
    before = decoded_content(result)

    sign(result, tmp_path / "signed.mp4", sora_original)

    after = decoded_content(tmp_path / "signed.mp4")
    assert after == before
    assert len(after.frames) == 12
    assert after.audio_packets


def test_the_signed_video_still_plays_to_the_end(cleaned_faststart, original, tmp_path):
    sign(cleaned_faststart, tmp_path / "signed.mp4", original)

    with av.open(str(tmp_path / "signed.mp4")) as container:
        assert container.format.name.startswith("mov,mp4")
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.duration is not None
        assert container.duration / av.time_base == pytest.approx(1.0, abs=0.1)
        frames = list(container.decode(video=0))
    assert len(frames) == 12
    assert (frames[-1].width, frames[-1].height) == (144, 256)


def test_a_quicktime_result_is_signed_as_quicktime(clips, original, tmp_path):
    from tests.clips import make_clip

    mov = make_clip(clips / "cleaned.mov", container="mov", mark=False)

    credentials = sign(mov, tmp_path / "signed.mov", original)

    assert credentials.valid
    assert read_credentials(tmp_path / "signed.mov") == credentials


def test_a_result_can_be_signed_in_place_and_named_anything(cleaned, original, tmp_path):
    result = tmp_path / "job-1234.part"
    result.write_bytes(cleaned.read_bytes())

    credentials = sign(result, result, original)

    assert read_credentials(result) == credentials
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-1234.part"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a video at all, just some words",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00" + b"\xff" * 500,  # a header, then garbage
    ],
    ids=["empty", "text", "broken-mp4"],
)
def test_a_corrupt_result_fails_and_nothing_is_written(content, original, tmp_path):
    result = tmp_path / "result.mp4"
    result.write_bytes(content)

    with pytest.raises(SigningFailed) as failure:
        sign(result, tmp_path / "signed.mp4", original)

    assert failure.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.mp4"]


def test_a_missing_result_fails_as_signing(tmp_path):
    with pytest.raises(SigningFailed, match="cannot be read"):
        sign(tmp_path / "gone.mp4", tmp_path / "signed.mp4", None)


def test_with_signing_off_the_result_is_delivered_as_it_was(cleaned, original, settings, tmp_path):
    settings.C2PA_SIGNING = False

    assert sign(cleaned, tmp_path / "out.mp4", original) is None

    assert (tmp_path / "out.mp4").read_bytes() == cleaned.read_bytes()
    assert read_credentials(tmp_path / "out.mp4") is None


def test_broken_keys_at_signing_time_fail_the_job_not_the_worker(cleaned, settings, tmp_path):
    settings.C2PA_CERT_CHAIN = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"
    settings.C2PA_PRIVATE_KEY = "nope"

    with pytest.raises(SigningFailed, match="signing keys cannot be used"):
        sign(cleaned, tmp_path / "signed.mp4", None)
    assert not (tmp_path / "signed.mp4").exists()


def test_read_credentials_of_a_video_without_any_is_none(original, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")

    assert read_credentials(original) is None
    assert read_credentials(tmp_path / "notes.txt") is None


def test_the_local_signer_validates_fully_once_its_ca_is_trusted(
    cleaned, original, settings, tmp_path
):
    # Proves the local pair meets c2pa's certificate profile: untrusted is all that is wrong.
    signed = sign(cleaned, tmp_path / "signed.mp4", original)
    assert signed.problems == ("signingCredential.untrusted",)
    chain, _ = local_ca.split_bundle((settings.C2PA_LOCAL_DIR / "local-signer.pem").read_bytes())
    _, ca = x509.load_pem_x509_certificates(chain)
    settings.C2PA_TRUST_ANCHORS = ca.public_bytes(serialization.Encoding.PEM).decode()

    credentials = must(read_credentials(tmp_path / "signed.mp4"))

    assert credentials.validation_state == "Trusted"
    assert credentials.problems == ()
    assert credentials.trusted


def test_threads_may_sign_at_the_same_time(cleaned, sora_original, tmp_path):
    start = threading.Barrier(4)

    def sign_one(index):
        start.wait()
        return sign(cleaned, tmp_path / f"signed-{index}.mp4", sora_original)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(sign_one, range(8)))

    assert all(c.valid and c.original_had_credentials for c in results)
    assert all(read_credentials(tmp_path / f"signed-{i}.mp4") == results[i] for i in range(8))
