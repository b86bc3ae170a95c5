"""A video sent again while its first job still runs is not charged again: set aside like one
already cleaned ("Already being cleaned"), however the link was copied, from the dashboard
and the API alike (the API's test is in tests/api/test_jobs_api.py); "Process it again"
still makes a second job when asked."""

import uuid

import pytest
from django.urls import reverse

from apps.billing import ledger
from apps.jobs import submission
from apps.jobs.models import Job, JobState
from tests.jobs.test_uploads import personal
from tests.uploads import form_carrying

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_storage")]

GOOD = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"


def paste(client, team, links: str, **fields):
    data = {"links": links, "owns_videos": "on", "submission": str(uuid.uuid4()), **fields}
    return client.post(reverse("jobs:submit", args=[team.public_id]), data)


@pytest.mark.parametrize(
    "again",
    [
        GOOD,
        GOOD + "#comments",
        GOOD.removeprefix("https://"),
        GOOD + "/",
        GOOD.replace("sora.chatgpt.com", "Sora.ChatGPT.com") + "?utm_source=x",
    ],
)
def test_a_link_pasted_again_while_its_job_runs_is_not_charged_again(login, alice, again):
    team = personal(alice).team
    [running] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    before = ledger.available_credits(team)

    response = paste(login(alice), team, again)

    assert "Already being cleaned — nothing was charged for this" in response.text
    assert running.get_absolute_url() in response.text
    assert Job.objects.count() == 1
    assert ledger.available_credits(team) == before


def test_a_link_pasted_while_its_job_is_being_downloaded_is_set_aside(login, alice):
    team = personal(alice).team
    [running] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    running.move(JobState.SUBMITTED, task_id="t-1")
    running.move(JobState.DOWNLOADING, result_url="https://example.com/out.mp4")

    response = paste(login(alice), team, GOOD)

    assert "Already being cleaned" in response.text
    assert Job.objects.count() == 1


def test_process_it_again_makes_a_second_job_for_a_running_link(login, alice):
    team = personal(alice).team
    submission.submit_jobs(membership=personal(alice), links=[GOOD])
    before = ledger.available_credits(team)
    client = login(alice)
    set_aside = paste(client, team, GOOD + "#again")

    action, again = form_carrying(set_aside.text, "again")
    client.post(action, again)

    assert Job.objects.count() == 2
    assert ledger.available_credits(team) == before - 10


def test_a_failed_job_does_not_hold_its_link_back(login, alice):
    team = personal(alice).team
    [failed] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    Job.objects.filter(pk=failed.pk).update(state=JobState.FAILED)

    response = paste(login(alice), team, GOOD)

    assert response.status_code == 302
    assert Job.objects.count() == 2
