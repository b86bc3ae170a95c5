"""Kie's pause, told where links are and only there: a new link is refused at submission
(nothing held) with when the pause was last checked; people who only upload never hear of
it; a waiting link job's page promises nothing and its timeline stays one line per kind of
step, with no provider codes. (The API's refusal is in tests/api/test_jobs_api.py.)"""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.billing import ledger
from apps.jobs import submission
from apps.jobs.models import Job, JobEvent, JobState, folded_timeline
from apps.removal.base import InputKind
from apps.removal.models import ProviderAlert
from apps.removal.routing import ProviderPaused
from tests.jobs.test_uploads import personal

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_storage")]

GOOD = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"
REFUSAL = (
    "Links cannot be cleaned right now: our link provider has paused Sora watermark removal "
    "(last checked 13:10). Upload the video file instead."
)
RAW = "500: This interface is temporarily paused"


def pause_kie() -> ProviderAlert:
    checked = timezone.now().replace(hour=13, minute=10, tzinfo=UTC)
    return ProviderAlert.objects.create(
        provider="kie", kind="paused", message=RAW, last_seen_at=checked
    )


def paste(client, team, links: str):
    data = {"links": links, "owns_videos": "on"}
    return client.post(reverse("jobs:submit", args=[team.public_id]), data)


def test_a_link_is_refused_while_the_pause_is_known_and_nothing_is_held(login, alice):
    team = personal(alice).team
    before = ledger.available_credits(team)
    pause_kie()

    response = paste(login(alice), team, GOOD)

    assert REFUSAL in response.text
    assert RAW not in response.text
    assert Job.objects.count() == 0
    assert ledger.available_credits(team) == before


def test_the_refusal_is_the_one_family_of_refusals():
    checked = datetime(2026, 12, 7, 13, 10, tzinfo=UTC)
    refusal = ProviderPaused(InputKind.LINK, last_checked=checked)

    assert (refusal.code, refusal.status) == ("provider-paused", 503)
    assert refusal.message == REFUSAL


def test_people_who_only_upload_see_no_pause_and_the_links_box_tells_it(login, alice):
    pause_kie()

    page = login(alice).get(reverse("jobs:dashboard", args=[personal(alice).team.public_id]))

    before_links, links_box = page.text.split('class="links-box"')
    assert "paused" not in before_links
    assert 'data-testid="outage-link"' in links_box
    assert REFUSAL in links_box
    assert RAW not in page.text


def test_a_waiting_link_jobs_page_promises_nothing_under_the_pause(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    pause_kie()

    page = login(alice).get(job.get_absolute_url()).text

    assert REFUSAL in page
    assert "within a minute or two" not in page


def test_a_waiting_jobs_page_without_a_pause_still_says_how_long(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])

    assert "within a minute or two" in login(alice).get(job.get_absolute_url()).text


def repeated_attempts(job: Job, times: int, start: datetime) -> None:
    """Sent and back in line `times` times, 16 seconds apart, from `start`."""
    events = []
    for _ in range(times):
        events += [
            JobEvent(job=job, from_state="queued", to_state="submitted", detail="Sending to Kie."),
            JobEvent(
                job=job,
                from_state="submitted",
                to_state="queued",
                detail="Not sent: Kie has paused Sora watermark removal; this one waits and "
                "goes out when it is back.",
            ),
        ]
    made = JobEvent.objects.bulk_create(events)
    for index, event in enumerate(made):
        moment = start + timedelta(seconds=8 * index)
        JobEvent.objects.filter(pk=event.pk).update(created_at=moment)


def test_the_timeline_folds_27_attempts_into_one_line(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    repeated_attempts(job, 27, datetime(2026, 12, 7, 13, 10, tzinfo=UTC))

    page = login(alice).get(job.get_absolute_url()).text

    timeline = page.split('class="timeline"')[1].split("</ol>")[0]
    assert timeline.count("<li>") == 2  # put in line, then the folded attempts
    assert "tried 27 times since 13:10" in timeline
    assert "(500" not in page


def test_a_single_attempt_and_a_last_one_under_way_are_not_folded():
    job = Job(state=JobState.QUEUED)
    send = JobEvent(job=job, to_state="submitted", detail="Sending to Kie.")
    wait = JobEvent(job=job, to_state="queued", detail="Not sent: Kie is under maintenance.")
    now = timezone.now()
    for event in (send, wait):
        event.created_at = now

    assert [line.detail for line in folded_timeline([send, wait])] == [send.detail, wait.detail]
    lines = folded_timeline([send, wait, send, wait, send])
    assert [line.detail for line in lines] == [
        f"Not sent: Kie is under maintenance (tried 2 times since {now:%H:%M}).",
        "Sending to Kie.",
    ]
