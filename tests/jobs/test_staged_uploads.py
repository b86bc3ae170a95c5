"""Files uploaded and not yet submitted: "Process it again" submits the very file that was set
aside, and no refusal of the form (the ownership box, credits, a monthly limit) loses one.

Alice has 30 credits (3 videos); Charlie is in another team.
"""

import uuid
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Membership, Team
from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry
from apps.jobs.models import Job, Upload
from tests.jobs.test_uploads import finish, personal
from tests.uploads import at, clip_bytes, form_carrying, post_videos, video_file


@pytest.fixture
def staging(settings, media_storage: Path, tmp_path: Path, files_provider: None) -> Path:
    settings.DOWNLOAD_TEMP_DIR = settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    return tmp_path


def different_clips(tmp_path: Path, names: list[str]) -> list[tuple[str, bytes]]:
    """One short clip per name, each a different video (the same one twice is cleaned once)."""
    return [
        (name, clip_bytes(tmp_path, name, seconds=0.5 * (index + 1), fps=6))
        for index, name in enumerate(names)
    ]


def stage(client: Client, url: str, tmp_path: Path, names: list[str]) -> list[str]:
    """Uploads files one by one to `url`, as the page's script does; returns their ids."""
    ids = []
    for name, clip in different_clips(tmp_path, names):
        response = client.post(url, {"file": video_file(name, clip)})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    return ids


def listed(html: str) -> list[str]:
    """The staged files the dashboard's form lists and would submit, by id."""
    return form_carrying(html, "submission", lacking="again")[1].get("uploads", [])


def holds(team: Team) -> int:
    return LedgerEntry.objects.filter(team=team, kind=EntryKind.HOLD).count()


# --- 1. "Process it again" for a file ---------------------------------------------------------
@pytest.mark.parametrize("script", [False, True], ids=["without-javascript", "with-htmx"])
def test_process_it_again_makes_one_job_for_the_file_set_aside_and_holds_once(
    login, alice, staging, script
):
    team = personal(alice).team
    client = login(alice)
    clip = clip_bytes(staging)
    post_videos(client, alice, [("first.mp4", clip)])
    finish(Job.objects.get())
    set_aside = post_videos(client, alice, [("renamed.mp4", clip)])
    assert "Already cleaned — nothing was charged for this" in set_aside.text
    before, held_before = ledger.available_credits(team), holds(team)
    headers = {"HX-Request": "true"} if script else {}

    action, again = form_carrying(set_aside.text, "again")
    pressed = client.post(action, again, headers=headers)
    pressed_twice = client.post(action, again, headers=headers)

    assert pressed.status_code == (200 if script else 302)
    assert "Choose video files" not in pressed.text
    [_, new_job] = Job.objects.order_by("id")
    assert new_job.original_name == "renamed.mp4"
    assert ledger.available_credits(team) == before - 10
    assert holds(team) == held_before + 1
    assert "already added when this form was first sent" in pressed_twice.text
    assert Job.objects.count() == 2
    assert Upload.objects.count() == 0


def test_process_it_again_without_credits_says_so_and_keeps_the_file(login, alice, staging):
    team = personal(alice).team
    client = login(alice)
    clip = clip_bytes(staging)
    post_videos(client, alice, [("first.mp4", clip)])
    finish(Job.objects.get())
    set_aside = post_videos(client, alice, [("again.mp4", clip)])
    ledger.adjust(team=team, credits=-20, key="drain", actor=alice, reason="test")

    action, again = form_carrying(set_aside.text, "again")
    pressed = client.post(action, again)

    assert "1 video needs 10 credits" in pressed.text
    assert Job.objects.count() == 1
    [waiting] = Upload.objects.all()
    assert listed(pressed.text) == [str(waiting.public_id)]


def test_a_staged_upload_of_another_team_cannot_be_submitted(login, alice, charlie, staging):
    [alices] = stage(login(alice), at(alice, "jobs:upload"), staging, ["alices.mp4"])

    response = login(charlie).post(
        at(charlie, "jobs:submit"),
        {"uploads": [alices], "again": "on", "owns_videos": "on", "submission": uuid.uuid4()},
    )

    assert "already submitted or removed" in response.text
    assert Job.objects.count() == 0
    assert Upload.objects.filter(public_id=alices).exists()
    assert alices not in response.text


# --- 2. Refusals keep the staged files ---------------------------------------------------------
def test_a_missed_ownership_box_keeps_three_staged_files_and_ticking_it_makes_three_jobs(
    login, alice, staging
):
    client = login(alice)
    ids = stage(client, at(alice, "jobs:upload"), staging, ["one.mp4", "two.mp4", "three.mp4"])

    refused = client.post(at(alice, "jobs:submit"), {"uploads": ids, "submission": uuid.uuid4()})

    assert "Please confirm that you own these videos" in refused.text
    assert listed(refused.text) == ids
    for name in ("one.mp4", "two.mp4", "three.mp4"):
        assert f'aria-label="Remove {name}"' in refused.text
    reloaded = client.get(at(alice, "jobs:dashboard"))
    assert listed(reloaded.text) == ids
    assert Job.objects.count() == 0

    sent = client.post(
        at(alice, "jobs:submit"),
        {"uploads": listed(reloaded.text), "owns_videos": "on", "submission": uuid.uuid4()},
    )

    assert sent.status_code == 302
    names = [job.original_name for job in Job.objects.order_by("submission_index")]
    assert names == ["one.mp4", "two.mp4", "three.mp4"]
    assert Upload.objects.count() == 0


def test_files_sent_without_javascript_and_the_box_unticked_are_kept(login, alice, staging):
    client = login(alice)
    files = different_clips(staging, ["a.mp4", "b.mp4", "c.mp4"])

    refused = post_videos(client, alice, files, owns_videos="")

    assert "Please confirm that you own these videos" in refused.text
    assert len(listed(refused.text)) == 3
    assert Job.objects.count() == 0

    client.post(
        at(alice, "jobs:submit"),
        {"uploads": listed(refused.text), "owns_videos": "on", "submission": uuid.uuid4()},
    )

    assert sorted(job.original_name for job in Job.objects.all()) == ["a.mp4", "b.mp4", "c.mp4"]


def test_refused_for_credits_a_person_removes_one_file_and_the_rest_fit(login, alice, staging):
    client = login(alice)
    ids = stage(client, at(alice, "jobs:upload"), staging, ["1.mp4", "2.mp4", "3.mp4", "4.mp4"])
    form = {"uploads": ids, "owns_videos": "on", "submission": str(uuid.uuid4())}

    refused = client.post(at(alice, "jobs:submit"), form)
    assert "4 videos need 40 credits" in refused.text
    assert listed(refused.text) == ids
    removed = client.post(at(alice, "jobs:submit"), {**form, "remove": ids[1]})

    assert listed(removed.text) == [ids[0], *ids[2:]]
    assert not Upload.objects.filter(public_id=ids[1]).exists()
    assert Job.objects.count() == 0

    sent = client.post(
        at(alice, "jobs:submit"),
        {"uploads": listed(removed.text), "owns_videos": "on", "submission": uuid.uuid4()},
    )

    assert sent.status_code == 302
    assert sorted(job.original_name for job in Job.objects.all()) == ["1.mp4", "3.mp4", "4.mp4"]


def test_a_member_over_the_monthly_limit_keeps_the_files(login, carol, acme, staging):
    ledger.grant(team=acme, credits=1000, key="t", memo="test")
    Membership.objects.filter(team=acme, user=carol).update(monthly_credit_limit=10)
    client = login(carol)
    ids = stage(client, reverse("jobs:upload", args=[acme.public_id]), staging, ["x.mp4", "y.mp4"])

    refused = client.post(
        reverse("jobs:submit", args=[acme.public_id]),
        {"uploads": ids, "owns_videos": "on", "submission": uuid.uuid4()},
    )

    assert "Your 2 videos need 20 credits; you can use 10 more credits (1 video) this month." in (
        refused.text
    )
    assert listed(refused.text) == ids
    assert listed(client.get(reverse("jobs:dashboard", args=[acme.public_id])).text) == ids


def test_removing_another_teams_upload_is_404_and_keeps_it(login, alice, charlie, staging):
    [alices] = stage(login(alice), at(alice, "jobs:upload"), staging, ["alices.mp4"])

    response = login(charlie).post(
        at(charlie, "jobs:submit"), {"remove": alices, "submission": uuid.uuid4()}
    )

    assert response.status_code == 404
    assert Upload.objects.filter(public_id=alices).exists()
