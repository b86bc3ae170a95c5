"""Every cleaned result carries Content Credentials, whichever provider made it: signed after the
download and before it is stored, read back here with c2pa itself. A result that cannot be
signed is never delivered: its job fails and is refunded."""

from pathlib import Path

import av
import pytest
from django.core.files.storage import default_storage

from apps.jobs import submission
from apps.jobs.models import JobState
from apps.jobs.public import job_shape_json
from apps.provenance import read_credentials
from tests.clips import make_clip
from tests.provenance.helpers import active_manifest, manifest_store, sign_like_sora
from tests.stack import SORA_LINK
from tests.swc import file_jobs, settled_once

pytestmark = pytest.mark.django_db(transaction=True)

EDITED = "visible watermark removed"
AI_MADE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def stored_copy(job, tmp_path: Path) -> Path:
    copy = tmp_path / f"{job.pk}-result.mp4"
    with default_storage.open(str(job.result_file.name), "rb") as stored:
        copy.write_bytes(stored.read())
    return copy


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_link_result_says_it_is_ai_made_and_edited_and_names_no_link(
    sim_stack, alice_membership, drive, tmp_path, login, alice
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    result = stored_copy(job, tmp_path)
    credentials = read_credentials(result)
    assert credentials is not None
    assert credentials.valid
    assert credentials.problems == ("signingCredential.untrusted",)
    assert credentials.ai_generated
    assert credentials.actions == ("c2pa.opened", "c2pa.edited")
    assert (credentials.original_title, credentials.original_had_credentials) == (
        "Sora video",
        False,
    )
    manifest = active_manifest(manifest_store(result))
    edited = next(
        action
        for assertion in manifest["assertions"]
        if assertion["label"].startswith("c2pa.actions")
        for action in assertion["data"]["actions"]
        if action["action"] == "c2pa.edited"
    )
    assert edited["description"] == EDITED
    assert edited["softwareAgent"]["name"] == "Kie.ai Sora 2 Watermark Remover"
    assert SORA_LINK not in result.read_bytes().decode("latin-1")  # the link travels nowhere
    # What was recorded is what the file says, and what the API and webhooks tell.
    assert job.credentials == credentials.as_json()
    shape = job_shape_json(job)["content_credentials"]
    assert shape == {
        "signed_by": credentials.issuer or credentials.signed_by,
        "edited_by": credentials.claim_generator,
        "ai_generated": True,
        "watermark_removed": True,
        "original_had_credentials": False,
        "trusted": False,
    }
    assert shape["edited_by"].startswith("Unmark/")
    page = login(alice).get(job.get_absolute_url()).text
    assert "This file keeps its" in page
    assert "the original had none of its own" in page


def test_a_file_whose_original_had_credentials_keeps_them_inside_its_result(
    pool, alice_membership, drive, tmp_path
):
    original = sign_like_sora(make_clip(tmp_path / "plain.mp4", audio=True), tmp_path / "sora.mp4")
    pool.start({})
    [job] = file_jobs(alice_membership, original)

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    result = stored_copy(job, tmp_path)
    credentials = read_credentials(result)
    assert credentials is not None
    assert credentials.valid
    assert credentials.original_had_credentials
    assert job.credentials is not None
    assert job.credentials["original_had_credentials"] is True
    manifest = active_manifest(manifest_store(result))
    [parent] = [i for i in manifest["ingredients"] if i["relationship"] == "parentOf"]
    assert parent["title"] == "Sora video"
    assert "active_manifest" in parent  # Sora's own manifest, kept
    assert any(
        action.get("digitalSourceType") == AI_MADE
        for assertion in manifest["assertions"]
        if assertion["label"].startswith("c2pa.actions")
        for action in assertion["data"]["actions"]
    )
    # The result is still the whole video, every frame of it playable.
    assert frames_in(result) == frames_in(original)
    settled_once(job)


def test_a_result_that_cannot_be_signed_is_not_delivered_and_its_credits_come_back(
    make_simulator, sim_stack, alice_membership, drive, settings
):
    # Bytes that look like an MP4 to the download (an `ftyp` box) but are not a video.
    broken = make_simulator(result_bytes=200_000)
    settings.KIE_BASE_URL = broken.url
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.failure_code == "signing"
    assert "could not be given its Content Credentials" in job.failure_message
    assert "Nothing was charged" in job.failure_message
    assert not job.result_file
    assert job.credentials is None
    assert sim_stack.stored_files() == []  # nothing unsigned reached storage
    settled_once(job)


def test_with_signing_switched_off_results_are_delivered_as_made_and_say_so(
    sim_stack, alice_membership, drive, settings
):
    settings.C2PA_SIGNING = False
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])

    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.credentials is None
    assert job_shape_json(job)["content_credentials"] is None
