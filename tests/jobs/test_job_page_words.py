"""A job's page says one thing at a time, and says it truthfully: who cleaned the video as it was
kept when it was cleaned (never a server's name), the badge and the sentence under it agree, a
video waiting for a server says so and how many go first, and the technical figures sit in a
details section in human units."""

import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.billing import ledger
from apps.jobs import lifecycle
from apps.jobs.models import Job, JobState
from apps.jobs.public import job_shape
from apps.removal.models import PoolTask, SwcServer
from tests.api.conftest import ApiClient, key_for
from tests.factories import make_job
from tests.swc import details, file_jobs, settled_once

GPU = "http://gpu-1.internal:8000"


def personal_team(user: User):
    return user.memberships.get(team__is_personal=True).team


def text_of(html: str) -> str:
    """The words of the page's main part (or of a piece of one), without tags, as one line."""
    main = re.search(r"<main[^>]*>(.*)</main>", html, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main[1] if main else html))


def badge(html: str) -> str:
    found = re.search(r'<span class="badge[^"]*">([^<]+)</span>', html)
    assert found, "no badge on the page"
    return found[1].strip()


# --- Who cleaned it ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_customers_read_what_was_kept_when_it_was_cleaned_whatever_the_servers_are_now(
    pool, clip, alice_membership, drive, alice, login, settings, admin_user, client
):
    [server] = pool.start({})
    [job] = file_jobs(alice_membership, clip)
    drive([job])
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, details(job)
    assert job.cleaned_by == "by our GPU servers"

    # The operator replaces the pool afterwards: the old server's address means nothing now.
    settings.SWC_SERVERS = [{"url": "https://gpu-7.internal", "authorization": ""}]
    page = login(alice).get(job.get_absolute_url()).text

    assert "Cleaned by our GPU servers." in page
    assert "127.0.0.1" not in page
    assert "gpu-" not in page
    # Staff still see which machine it was, by its address.
    client.force_login(admin_user)
    staff_page = client.get(reverse("admin:jobs_job_change", args=[job.pk])).text
    assert f"127.0.0.1 ({server.url})" in staff_page
    settled_once(job)


@pytest.mark.django_db
def test_a_canceled_video_never_says_who_cleaned_it(login, alice):
    # It was sent to Kie once, came back in line (Kie paused), and was canceled there.
    team = personal_team(alice)
    job = make_job(team, state=JobState.SUBMITTED, waited=1)
    ledger.hold_for_jobs(team=team, jobs=[job])
    assert job.move(JobState.QUEUED, detail="Kie is not taking videos right now.")
    assert job.cleaned_by == ""
    client = login(alice)

    client.post(reverse("jobs:cancel", args=[job.team.public_id, job.public_id]))

    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    page = text_of(client.get(job.get_absolute_url()).text)
    assert "Canceled" in page
    assert "Cleaned" not in page
    assert "Kie.ai" not in page
    assert job_shape(job)["provider"] is None


@pytest.mark.django_db
def test_a_failed_video_says_who_tried_it(login, alice):
    job = make_job(
        personal_team(alice), state=JobState.FAILED, waited=1, took=2, failure_code="kie_failed"
    )

    page = text_of(login(alice).get(job.get_absolute_url()).text)

    assert "Tried by Kie.ai." in page
    assert job_shape(job)["provider"] == "kie"


# --- The badge and the sentence agree ----------------------------------------------------------
@pytest.mark.django_db
def test_a_video_a_server_holds_behind_another_says_it_waits_and_how_many_go_first(login, alice):
    team = personal_team(alice)
    job = make_job(team, provider="swc", state=JobState.SUBMITTED, waited=1, server=GPU)
    # Another video booked on the same server a moment before: it runs first.
    earlier = timezone.now() - timedelta(seconds=30)
    PoolTask.objects.create(
        reference="someone-else", server=SwcServer.objects.get(url=GPU), task_id="t-0"
    )
    PoolTask.objects.filter(task_id="t-0").update(booked_at=earlier)

    html = login(alice).get(job.get_absolute_url()).text

    assert badge(html) == "Waiting"
    page = text_of(html)
    assert "Waiting for a free cleaning server (1 ahead)." in page
    assert "Sending" not in page
    assert "gpu-1" not in page
    assert "Being cleaned" not in page
    assert job_shape(job)["stage"] == "Waiting"
    assert job_shape(job)["provider"] == "swc"


@pytest.mark.django_db
def test_a_video_being_sent_says_so_in_the_badge_and_the_sentence(login, alice):
    job = make_job(personal_team(alice), provider="swc")
    assert job.move(JobState.SUBMITTED, cleaned_by="by our GPU servers")

    html = login(alice).get(job.get_absolute_url()).text

    assert badge(html) == "Sending"
    assert "Being sent to be cleaned by our GPU servers." in text_of(html)


@pytest.mark.django_db
def test_a_video_in_line_counts_the_files_before_it_and_its_page_follows_the_line(
    login, alice, bob
):
    # Bob's file came first; Alice's two came after, the second of them is the one we watch.
    bobs = make_job(personal_team(bob), provider="swc")
    first = make_job(personal_team(alice), provider="swc")
    watched = make_job(personal_team(alice), provider="swc")
    make_job(personal_team(alice))  # a link waits in another line
    later = timezone.now() + timedelta(seconds=5)
    make_job(personal_team(alice), provider="swc", created_at=later)  # behind: not counted
    client = login(alice)

    html = client.get(watched.get_absolute_url()).text
    since = re.search(r"since=([^\"&]+)", html)
    assert since

    assert badge(html) == "Waiting"
    assert "Waiting for a free cleaning server (2 ahead)." in text_of(html)
    assert job_shape(watched)["provider"] is None
    assert (
        client.get(watched.get_absolute_url(), {"since": since[1]}, HTTP_HX_REQUEST="true")
    ).status_code == 204
    # Bob's goes out: the line moves, and the open page hears of it.
    assert bobs.move(JobState.SUBMITTED, cleaned_by="by our GPU servers")
    moved = client.get(watched.get_absolute_url(), {"since": since[1]}, HTTP_HX_REQUEST="true")
    assert moved.status_code == 200
    assert "Waiting for a free cleaning server (1 ahead)." in text_of(moved.text)
    assert first.ahead() == 0
    first_page = client.get(first.get_absolute_url()).text
    assert "Waiting for a free cleaning server." in text_of(first_page)


# --- The provider, as the API and webhooks tell it -----------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_job_has_no_provider_until_one_takes_it_and_then_names_the_one_that_did(
    pool, clip, alice_membership, alice, step
):
    pool.start({})
    [job] = file_jobs(alice_membership, clip)
    # Accepted while another provider was first in line for files: a guess, not a promise.
    Job.objects.filter(pk=job.pk).update(provider="replicate", next_check_at=None)
    api = ApiClient(key_for(alice, alice_membership.team))

    queued = api.get(f"/jobs/{job.public_id}").json()

    assert (queued["state"], queued["provider"]) == ("queued", None)
    Job.objects.filter(pk=job.pk).update(next_check_at=timezone.now())
    step()
    job.refresh_from_db()
    assert job.state != JobState.QUEUED, details(job)
    taken = api.get(f"/jobs/{job.public_id}").json()
    assert taken["provider"] == "swc"
    listed = api.get("/jobs").json()["data"]
    assert [item["provider"] for item in listed] == ["swc"]


# --- Figures in human units, in a details section ------------------------------------------------
@pytest.mark.django_db
def test_the_figures_are_in_human_units_inside_a_details_section(login, alice, media_storage):
    team = personal_team(alice)
    job = make_job(team, provider="swc", state=JobState.SUBMITTED, waited=1)
    ledger.hold_for_jobs(team=team, jobs=[job])
    Job.objects.filter(pk=job.pk).update(
        original_name="forest.mp4", original_size=338_944, provider_cost_ms=20_882
    )
    job.refresh_from_db()
    assert job.move(JobState.DOWNLOADING, result_url="https://example.com/out.mp4")
    name = default_storage.save("results/forest.mp4", ContentFile(b"x" * 291_034))
    assert lifecycle.succeed_job(job, name=name, size=291_034, sha256="ab" * 32)

    html = login(alice).get(job.get_absolute_url()).text

    page = text_of(html)
    assert "Saved the clean video (284 KB)." in page
    assert "bytes" not in page
    assert "291,034" not in page
    assert " ms" not in page
    section = re.search(r'<details class="job-details">(.*?)</details>', html, re.S)
    assert section, "no details section"
    details_text = text_of(section[1])
    assert "Cleaning took 20.9 seconds" in details_text
    assert "Original 331 KB" in details_text
    assert "Clean video 284 KB" in details_text
    assert "ab" * 32 in details_text
    # The digest is only there, not beside the download button.
    assert html.count("ab" * 32) == 1
    assert "Cleaned by our GPU servers." in page
