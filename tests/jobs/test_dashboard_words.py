"""What the dashboard and the job page say: credits reserved, charged or refunded; stages in
plain words with an honest percentage; repeated lines explained; the ownership statement made
once; what a monthly limit leaves; cancel where it works and why not where it does not."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Membership
from apps.billing import ledger
from apps.billing.models import Wallet
from apps.jobs import lifecycle, submission
from apps.jobs.models import Job, JobState
from tests.jobs.test_views import GOOD, OTHER, THIRD, dashboard_url, personal, submit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_storage")]


def words(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.text).split())


def test_the_header_and_dashboard_show_available_and_reserved_apart(login, alice):
    client = login(alice)
    team = personal(alice).team
    submit(client, team, GOOD)

    page = words(client.get(dashboard_url(team)))

    assert "20 available · low · 10 reserved" in page  # the header chip (2 videos left: low)
    assert "20 credits available · 10 reserved for videos in progress" in page
    assert "10 reserved" in page.split("Your team's videos")[1]  # the credits column


def test_the_credits_column_says_charged_and_refunded(login, alice):
    charged, refunded = submission.submit_jobs(membership=personal(alice), links=[GOOD, OTHER])
    charged.move(JobState.SUBMITTED)
    charged.move(JobState.DOWNLOADING)
    lifecycle.succeed_job(charged, name="results/x.mp4", size=1, sha256="x" * 64)
    lifecycle.fail_job(refunded, code="kie_500", message="It could not be processed.")

    client = login(alice)
    page = client.get(dashboard_url(charged.team))
    table = words(page).split("Your team's videos")[1]
    job_page = words(client.get(refunded.get_absolute_url()))

    assert "10 charged" in table
    assert "10 refunded" in table
    assert " 0 refunded" not in table
    assert "kie_500" not in table
    # The job page words it the same way as the list.
    assert "Credits 10 refunded" in job_page


def test_repeated_lines_are_explained_per_line_and_charged_once(login, alice):
    client = login(alice)

    response = submit(client, personal(alice).team, f"{GOOD}\n{OTHER}\n{GOOD}\n", htmx=True)

    page = words(response)
    assert "1 repeated line — each video is sent and charged once" in page
    assert "Line 3 " + GOOD + " The same video as line 1: it is sent once." in page
    assert Job.objects.filter(team=personal(alice).team).count() == 2


def test_the_ownership_statement_is_made_once_and_remembered_with_its_time(login, alice):
    client = login(alice)
    team = personal(alice).team
    assert 'name="owns_videos"' in client.get(dashboard_url(team)).text

    submit(client, team, GOOD)
    alice.refresh_from_db()
    stated = alice.ownership_confirmed_at
    assert stated is not None
    assert timezone.now() - stated < timedelta(minutes=1)

    page = client.get(dashboard_url(team)).text
    assert 'name="owns_videos"' not in page
    assert "You confirmed on" in page
    assert submit(client, team, OTHER, owns=False).status_code == 302
    assert Job.objects.filter(team=personal(alice).team).count() == 2
    alice.refresh_from_db()
    assert alice.ownership_confirmed_at == stated  # the first statement's time is kept


def test_a_member_with_a_monthly_limit_sees_what_is_left_and_no_buy_link(login, acme, carol):
    Membership.objects.filter(team=acme, user=carol).update(monthly_credit_limit=50)
    ledger.grant(team=acme, credits=20, key="small", memo="A little")
    client = login(carol)
    submit(client, acme, GOOD)

    page = words(client.get(dashboard_url(acme)))
    assert "Your monthly limit: 4 videos (40 credits) left of 5" in page
    assert "Buy credits" not in page

    refused = words(submit(client, acme, f"{OTHER}\n{THIRD}\n", htmx=True))
    assert "more credits are needed" in refused
    assert "Buy credits" not in refused


def test_removal_shows_the_providers_own_percentage(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    job.move(JobState.SUBMITTED, submitted_at=timezone.now())
    job.move(JobState.PROCESSING)
    job.touch(provider_progress=45)

    page = words(login(alice).get(job.get_absolute_url()))

    assert "Removing the watermark — 45 %" in page
    assert "estimate" not in page
    assert job.progress == 10 + 80 * 45 // 100


def test_without_a_percentage_from_the_provider_the_estimate_says_so(login, alice, time_machine):
    time_machine.move_to(timezone.now(), tick=False)  # a slow machine must not move the estimate
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    job.move(JobState.SUBMITTED, submitted_at=timezone.now() - timedelta(seconds=30))
    job.move(JobState.PROCESSING)

    page = words(login(alice).get(job.get_absolute_url()))

    assert "Removing the watermark — about 50 %" in page
    assert "estimate" in page
    job.submitted_at = timezone.now() - timedelta(hours=1)
    assert job.stage_percent == 95  # never claims to be done before the provider says so


def test_no_stage_names_a_vendor():
    assert not [label for _, label in JobState.choices if "Kie" in label]


def test_cancel_is_offered_while_queued_and_explained_once_sent(login, alice):
    queued, sent = submission.submit_jobs(membership=personal(alice), links=[GOOD, OTHER])
    sent.move(JobState.SUBMITTED)
    client = login(alice)

    team = queued.team
    dashboard = client.get(dashboard_url(team)).text
    assert reverse("jobs:cancel", args=[team.public_id, queued.public_id]) in dashboard
    assert reverse("jobs:cancel", args=[team.public_id, sent.public_id]) not in dashboard
    assert "the watermark remover already has it" in words(client.get(sent.get_absolute_url()))

    client.post(reverse("jobs:cancel", args=[team.public_id, queued.public_id]))
    assert Job.objects.get(pk=queued.pk).state == JobState.CANCELED
    assert Wallet.objects.get(team=personal(alice).team).held == 10


def test_the_timeline_shows_dates_in_the_viewers_time_zone(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    client = login(alice)
    local = timezone.localtime(job.created_at, timezone=ZoneInfo("Asia/Tokyo"))

    client.cookies["tz"] = "Asia/Tokyo"
    page = client.get(job.get_absolute_url()).text

    assert f"{local:%-d %b %Y}, {local:%H:%M:%S} JST" in page
    client.cookies["tz"] = "Not/AZone"
    assert " UTC</time>" in client.get(job.get_absolute_url()).text


def test_the_live_refresh_announces_videos_that_ended(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    client = login(alice)
    table_url = reverse("jobs:table", args=[job.team.public_id])
    first = client.get(table_url, headers={"HX-Request": "true"})
    since = first.text.split("since=")[1].split('"')[0]
    assert 'id="announcer"' not in first.text

    lifecycle.fail_job(job, code="x", message="Could not be processed.")
    refresh = client.get(table_url, {"since": since}, headers={"HX-Request": "true"})

    assert f"Video {job.video_id} failed; its credits were refunded." in refresh.text
    assert 'aria-live="polite"' in refresh.text
    assert 'class="filters"' not in refresh.text  # the filters sit outside the refreshed part
