"""The dashboard, the jobs table and the job pages, as people use them (with and without htmx)."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import Membership
from apps.billing import ledger
from apps.billing.models import LedgerEntry, Wallet
from apps.jobs import lifecycle, submission
from apps.jobs.models import Job, JobState
from tests.stack import VIDEO, finished_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_storage")]

GOOD = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"
OTHER = "https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef"
THIRD = "https://sora.chatgpt.com/p/s_fedcba9876543210fedcba9876543210"


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.S)
    assert match, f"{pattern!r} not found"
    return match.group(1)


def personal(user) -> Membership:
    return Membership.objects.select_related("team", "user").get(user=user, team__is_personal=True)


def acme_membership(user, acme) -> Membership:
    return Membership.objects.select_related("team", "user").get(user=user, team=acme)


def available(team) -> int:
    return ledger.available_credits(team)


def submit(client, team, links: str, *, owns: bool = True, htmx: bool = False):
    data = {"links": links}
    if owns:
        data["owns_videos"] = "on"
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("jobs:submit", args=[team.public_id]), data, **headers)


def dashboard_url(team) -> str:
    return reverse("jobs:dashboard", args=[team.public_id])


def table_url(team) -> str:
    return reverse("jobs:table", args=[team.public_id])


# --- Submitting links --------------------------------------------------------------------------
def test_pasting_links_creates_one_job_each_and_holds_their_credits(login, alice):
    client = login(alice)
    team = personal(alice).team

    response = submit(client, team, f"{GOOD}\n{OTHER}\n")

    assert response.status_code == 302
    assert Job.objects.filter(team=team).count() == 2
    assert available(team) == 10
    assert Wallet.objects.get(team=team).held == 20
    page = client.get(dashboard_url(team))
    assert "2 videos added." in page.text
    assert page.text.count("s_68e83bd7eee88191be79d2ba7158516f") >= 1


def test_bad_lines_are_explained_and_cost_nothing_while_good_ones_go_through(login, alice):
    client = login(alice)
    team = personal(alice).team

    response = submit(
        client, team, f"{GOOD}\nhttps://sora.chatgpt.com/d/gen_123\n{OTHER}\n", htmx=True
    )

    assert response.status_code == 200
    assert "2 videos added" in response.text
    assert "Line 2" in response.text
    assert "draft link" in response.text
    assert Job.objects.filter(team=team).count() == 2
    assert available(team) == 10
    # Only the line to fix stays in the box.
    textarea = found(r"<textarea[^>]*>(.*?)</textarea>", response.text)
    assert textarea.strip() == "https://sora.chatgpt.com/d/gen_123"


def test_the_htmx_answer_updates_the_table_and_the_balance_out_of_band(login, alice):
    response = submit(login(alice), personal(alice).team, GOOD, htmx=True)

    assert 'id="jobs-table"' in response.text
    assert 'hx-swap-oob="true"' in response.text
    assert re.search(
        r'id="balance-chip" hx-swap-oob="true"[^>]*><strong[^>]*>20</strong> available',
        response.text,
    )


def test_only_bad_lines_create_nothing(login, alice):
    client = login(alice)

    response = submit(client, personal(alice).team, "https://www.youtube.com/watch?v=1\nhello")

    assert response.status_code == 200
    assert "2 lines could not be used" in response.text
    assert Job.objects.count() == 0
    assert LedgerEntry.objects.filter(kind="hold").count() == 0


def test_the_ownership_checkbox_is_required(login, alice):
    response = submit(login(alice), personal(alice).team, GOOD, owns=False)

    assert "Please confirm that you own these videos" in response.text
    assert Job.objects.count() == 0


def test_a_ten_thousand_line_paste_is_refused_clearly_and_creates_nothing(login, alice):
    text = "\n".join(f"https://sora.chatgpt.com/p/s_{i:032x}" for i in range(10_000))

    response = submit(login(alice), personal(alice).team, text)

    assert response.status_code == 200
    assert "You pasted 10,000 lines, but up to 50 links can be sent at once" in response.text
    assert Job.objects.count() == 0
    assert LedgerEntry.objects.filter(kind="hold").count() == 0


def test_too_few_credits_creates_nothing_and_says_how_many_are_missing(login, alice):
    client = login(alice)
    team = personal(alice).team

    response = submit(
        client, team, f"{GOOD}\n{OTHER}\n{THIRD}\nhttps://sora.chatgpt.com/p/s_{'1' * 32}"
    )

    assert (
        "4 videos need 40 credits, but your team has 30 credits available: 10 more credits are"
        in response.text
    )
    assert Job.objects.count() == 0
    assert available(team) == 30


def test_a_frozen_team_cannot_submit(login, alice):
    team = personal(alice).team
    ledger.freeze(team=team, reason="dispute")

    response = submit(login(alice), personal(alice).team, GOOD)

    assert "paused for this team because of a payment dispute" in response.text
    assert Job.objects.count() == 0


def test_a_member_over_their_monthly_limit_is_told_and_nothing_is_created(login, carol, acme):
    ledger.grant(team=acme, credits=1000, key="t", memo="test")
    membership = acme_membership(carol, acme)
    membership.monthly_credit_limit = 10
    membership.save()
    response = submit(login(carol), acme, f"{GOOD}\n{OTHER}")

    assert (
        "Your 2 videos need 20 credits; you can use 10 more credits (1 video) this month."
        in response.text
    )
    assert Job.objects.count() == 0


def test_the_form_works_without_javascript_after_an_error(login, alice):
    response = submit(login(alice), personal(alice).team, "not a link")

    assert '<form method="post"' in response.text
    assert "not a link" in response.text


# --- The jobs table ----------------------------------------------------------------------------
def test_the_table_refreshes_only_when_something_changed(login, alice):
    client = login(alice)
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    first = client.get(table_url(job.team), HTTP_HX_REQUEST="true")
    since = found(r"since=([0-9.-]+)", first.text)

    unchanged = client.get(table_url(job.team) + f"?since={since}", HTTP_HX_REQUEST="true")
    job.move(JobState.SUBMITTED)  # being sent: no task id back yet
    changed = client.get(table_url(job.team) + f"?since={since}", HTTP_HX_REQUEST="true")

    assert unchanged.status_code == 204
    assert changed.status_code == 200
    assert "Sending" in changed.text


def test_the_live_refreshes_bring_the_balance_a_failure_gave_back(login, alice):
    client = login(alice)
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    lifecycle.fail_job(job, code="kie_500", message="Kie could not remove the watermark: boom.")

    table = client.get(table_url(job.team), HTTP_HX_REQUEST="true")
    status = client.get(
        reverse("jobs:detail", args=[job.team.public_id, job.public_id]), HTTP_HX_REQUEST="true"
    )

    for refresh in (table, status):
        assert re.search(
            r'id="balance-chip" hx-swap-oob="true"[^>]*><strong[^>]*>30</strong> available',
            refresh.text,
        )


def test_the_table_stops_refreshing_when_nothing_is_in_flight(login, alice):
    client = login(alice)
    job = finished_job(personal(alice))

    response = client.get(table_url(job.team), HTTP_HX_REQUEST="true")

    assert job.public_id.hex[:8] in response.text.replace("-", "")
    assert 'hx-trigger="every 2s"' not in response.text


def test_the_table_shows_plain_stage_names_and_failure_reasons(login, alice):
    membership = personal(alice)
    [_queued, failed] = submission.submit_jobs(membership=membership, links=[GOOD, OTHER])
    lifecycle.fail_job(failed, code="kie_500", message="Kie could not remove the watermark: boom.")

    page = login(alice).get(dashboard_url(membership.team)).text

    assert "Waiting" in page
    assert "Failed" in page
    assert "Kie could not remove the watermark: boom." in page
    assert 'hx-trigger="every 2s"' in page


def test_filters_narrow_the_table_and_bad_values_are_ignored_with_a_note(login, alice):
    membership = personal(alice)
    [done] = [finished_job(membership)]
    submission.submit_jobs(membership=membership, links=[OTHER])
    client = login(alice)

    only_done = client.get(dashboard_url(membership.team) + "?state=succeeded").text
    bogus = client.get(dashboard_url(membership.team) + "?state=bogus&by=abc&page=zzz")

    assert done.video_id in only_done
    assert "s_0123456789abcdef0123456789abcdef" not in only_done
    assert bogus.status_code == 200
    assert "Some filters were not understood and were ignored." in bogus.text
    assert "s_0123456789abcdef0123456789abcdef" in bogus.text


def test_filter_by_who_submitted(login, alice, carol, acme):
    ledger.grant(team=acme, credits=100, key="t", memo="test")
    submission.submit_jobs(membership=acme_membership(alice, acme), links=[GOOD])
    submission.submit_jobs(membership=acme_membership(carol, acme), links=[OTHER])
    page = login(alice).get(dashboard_url(acme) + f"?by={carol.pk}").text

    assert "s_0123456789abcdef0123456789abcdef" in page
    assert "s_68e83bd7eee88191be79d2ba7158516f" not in page


def test_the_dashboard_costs_the_same_queries_with_1_or_60_jobs(login, alice):
    membership = personal(alice)
    ledger.grant(team=membership.team, credits=10_000, key="t", memo="test")
    client = login(alice)
    submission.submit_jobs(membership=membership, links=[GOOD])
    client.get(dashboard_url(membership.team))  # warm the session

    with CaptureQueriesContext(connection) as one:
        client.get(dashboard_url(membership.team))
    links = [f"https://sora.chatgpt.com/p/s_{i:032x}" for i in range(1, 60)]
    submission.submit_jobs(membership=membership, links=links[:45])
    submission.submit_jobs(membership=membership, links=links[45:])
    with CaptureQueriesContext(connection) as many:
        client.get(dashboard_url(membership.team))

    assert len(many) == len(one)


# --- One job -----------------------------------------------------------------------------------
def test_the_job_page_shows_the_timeline_preview_and_download(login, alice):
    job = finished_job(personal(alice))

    page = login(alice).get(reverse("jobs:detail", args=[job.team.public_id, job.public_id])).text

    assert "Timeline" in page
    assert (
        page.index("Waiting") < page.index("Sending") < page.index("Saving") < page.rindex("Done")
    )
    assert reverse("jobs:preview", args=[job.team.public_id, job.public_id]) in page
    assert reverse("jobs:download", args=[job.team.public_id, job.public_id]) in page


def test_download_streams_the_stored_bytes_with_a_sensible_name(login, alice):
    job = finished_job(personal(alice))

    response = login(alice).get(reverse("jobs:download", args=[job.team.public_id, job.public_id]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == VIDEO
    assert response["Content-Type"] == "video/mp4"
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="sora-s_68e83bd7eee88191be79d2ba7158516f-unmarked.mp4"'
    )


def test_preview_serves_the_video_inline(login, alice):
    job = finished_job(personal(alice))

    response = login(alice).get(reverse("jobs:preview", args=[job.team.public_id, job.public_id]))

    assert response["Content-Disposition"].startswith("inline")


def test_a_job_without_a_result_has_nothing_to_download(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])

    assert (
        login(alice)
        .get(reverse("jobs:download", args=[job.team.public_id, job.public_id]))
        .status_code
        == 404
    )


@pytest.mark.parametrize("name", ["jobs:detail", "jobs:download", "jobs:preview"])
def test_an_outsider_gets_404_for_another_teams_job(login, alice, charlie, name):
    job = finished_job(personal(alice))

    response = login(charlie).get(reverse(name, args=[job.team.public_id, job.public_id]))

    assert response.status_code == 404


def test_an_outsider_cannot_retry_a_failed_job_and_nothing_changes(login, alice, charlie):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    lifecycle.fail_job(job, code="x", message="failed")
    entries = LedgerEntry.objects.count()

    response = login(charlie).post(reverse("jobs:retry", args=[job.team.public_id, job.public_id]))

    assert response.status_code == 404
    assert Job.objects.count() == 1
    assert LedgerEntry.objects.count() == entries


def test_an_outsider_cannot_cancel_a_queued_job(login, alice, charlie):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])

    response = login(charlie).post(reverse("jobs:cancel", args=[job.team.public_id, job.public_id]))

    assert response.status_code == 404
    job.refresh_from_db()
    assert job.state == JobState.QUEUED


def test_teammates_see_and_download_each_others_jobs(login, alice, carol, acme):
    ledger.grant(team=acme, credits=100, key="t", memo="test")
    job = finished_job(acme_membership(alice, acme))

    response = login(carol).get(reverse("jobs:download", args=[job.team.public_id, job.public_id]))

    assert response.status_code == 200


def test_try_again_makes_a_new_job_with_a_new_hold(login, alice):
    membership = personal(alice)
    [job] = submission.submit_jobs(membership=membership, links=[GOOD])
    lifecycle.fail_job(job, code="kie_500", message="boom")

    response = login(alice).post(reverse("jobs:retry", args=[job.team.public_id, job.public_id]))

    new_job = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == reverse(
        "jobs:detail", args=[new_job.team.public_id, new_job.public_id]
    )
    assert new_job.retry_of == job
    assert new_job.source_url == job.source_url
    assert LedgerEntry.objects.filter(job=new_job, kind="hold").count() == 1
    assert available(membership.team) == 20


def test_a_job_in_flight_cannot_be_tried_again(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])

    login(alice).post(reverse("jobs:retry", args=[job.team.public_id, job.public_id]))

    assert Job.objects.count() == 1


def test_cancelling_a_queued_job_releases_its_credits(login, alice):
    membership = personal(alice)
    [job] = submission.submit_jobs(membership=membership, links=[GOOD])

    login(alice).post(reverse("jobs:cancel", args=[job.team.public_id, job.public_id]))

    job.refresh_from_db()
    assert job.state == JobState.CANCELED
    assert available(membership.team) == 30
    assert sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True)) == [
        "hold",
        "release",
    ]


def test_a_sent_job_can_no_longer_be_canceled(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    job.move(JobState.SUBMITTED)

    response = login(alice).post(
        reverse("jobs:cancel", args=[job.team.public_id, job.public_id]), follow=True
    )

    assert "can no longer be canceled" in response.text
    job.refresh_from_db()
    assert job.state == JobState.SUBMITTED


def test_the_job_page_refresh_answers_204_while_nothing_changes(login, alice):
    [job] = submission.submit_jobs(membership=personal(alice), links=[GOOD])
    client = login(alice)
    page = client.get(reverse("jobs:detail", args=[job.team.public_id, job.public_id])).text
    since = found(r"since=([^\"&]+)", page)

    response = client.get(
        reverse("jobs:detail", args=[job.team.public_id, job.public_id]) + f"?since={since}",
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 204


def test_trying_again_twice_makes_one_new_job(login, alice):
    membership = personal(alice)
    [job] = submission.submit_jobs(membership=membership, links=[GOOD])
    lifecycle.fail_job(job, code="kie_500", message="boom")
    client = login(alice)

    first = client.post(reverse("jobs:retry", args=[job.team.public_id, job.public_id]))
    second = client.post(
        reverse("jobs:retry", args=[job.team.public_id, job.public_id]), follow=True
    )

    new_job = Job.objects.get(retry_of=job)
    assert first["Location"] == second.redirect_chain[0][0]
    assert "already tried again" in second.text
    assert LedgerEntry.objects.filter(kind="hold").count() == 2
    page = client.get(reverse("jobs:detail", args=[job.team.public_id, job.public_id])).text
    assert reverse("jobs:detail", args=[new_job.team.public_id, new_job.public_id]) in page
    assert "Try again</button>" not in page


def test_an_expired_video_can_be_processed_again(login, alice):
    job = finished_job(personal(alice))
    job.move(JobState.EXPIRED, result_file="")

    login(alice).post(reverse("jobs:retry", args=[job.team.public_id, job.public_id]))

    assert Job.objects.filter(retry_of=job).count() == 1


def test_the_same_paste_form_sent_twice_creates_its_jobs_once(login, alice):
    client = login(alice)
    team = personal(alice).team
    page = client.get(dashboard_url(team)).text
    submission = found(r'name="submission" value="([0-9a-f-]{36})"', page)
    data = {"links": GOOD, "owns_videos": "on", "submission": submission}

    first = client.post(reverse("jobs:submit", args=[team.public_id]), data)
    again = client.post(reverse("jobs:submit", args=[team.public_id]), data)

    assert first.status_code == 302
    [job] = Job.objects.all()
    assert (str(job.submission_id), job.submission_index) == (submission, 0)
    assert LedgerEntry.objects.filter(kind="hold").count() == 1
    assert available(team) == 20
    assert "This video was already added when this form was first sent" in again.text
    assert "nothing was charged again" in again.text
    assert job.video_id in again.text


def test_a_paste_refused_for_credits_can_be_sent_again_once_topped_up(login, alice):
    client = login(alice)
    team = personal(alice).team
    links = "\n".join(f"https://sora.chatgpt.com/p/s_{i:032x}" for i in range(1, 5))
    data = {
        "links": links,
        "owns_videos": "on",
        "submission": "0" * 8 + "-0000-4000-8000-" + "0" * 12,
    }

    refused = client.post(reverse("jobs:submit", args=[team.public_id]), data)
    ledger.grant(team=team, credits=100, key="top-up", memo="test")
    accepted = client.post(reverse("jobs:submit", args=[team.public_id]), data)

    assert "more credits are needed" in refused.text
    assert accepted.status_code == 302
    assert Job.objects.count() == 4


def test_an_expired_video_says_its_credits_were_charged(login, alice):
    job = finished_job(personal(alice))
    job.move(JobState.EXPIRED, result_file="")

    page = login(alice).get(job.get_absolute_url()).text

    assert "<dt>Credits</dt><dd>10 charged</dd>" in page
    assert "Try again</button>" in page
    assert "Download MP4" not in page


def test_page_links_keep_the_filters_and_drop_the_refresh_marker(login, alice):
    membership = personal(alice)
    ledger.grant(team=membership.team, credits=1000, key="t", memo="test")
    links = [f"https://sora.chatgpt.com/p/s_{i:032x}" for i in range(1, 23)]
    submission.submit_jobs(membership=membership, links=links)

    page = login(alice).get(dashboard_url(membership.team) + "?state=queued&since=x").text

    assert f'href="{dashboard_url(membership.team)}?state=queued&amp;page=2"' in page
    assert f'hx-get="{table_url(membership.team)}?state=queued&amp;page=2"' in page


def test_one_video_short_of_credits_is_told_in_the_singular(login, alice):
    team = personal(alice).team
    ledger.adjust(team=team, credits=-21, key="t", actor=alice, reason="test")

    response = submit(login(alice), team, GOOD)

    assert (
        "1 video needs 10 credits, but your team has 9 credits available: 1 more credit is needed."
        in response.text
    )
    assert Job.objects.count() == 0


def test_a_monthly_limit_of_one_credit_is_said_in_the_singular(login, carol, acme):
    ledger.grant(team=acme, credits=1000, key="t", memo="test")
    Membership.objects.filter(team=acme, user=carol).update(monthly_credit_limit=1)

    response = submit(login(carol), acme, GOOD)

    assert (
        "Your video needs 10 credits; you can use 1 more credit (0 videos) this month."
        in response.text
    )
