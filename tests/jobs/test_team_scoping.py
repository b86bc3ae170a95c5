"""The job pages, walked by each character of the Acme team.

Alice owns Acme, Bob is its admin, Carol a member and Charlie an outsider. Every member sees,
downloads, retries and cancels the team's jobs, whoever submitted them, at Acme's address (and
nowhere else); Charlie gets 404 for each and changes nothing, under Acme's address and under his
own team's. Once Alice deletes Acme, its jobs are 404 for everyone. People who leave, are removed
or delete their account leave their jobs and their name in the log behind.
"""

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts import invitations
from apps.accounts.models import Membership, Role, Team, TeamEvent, TeamEventKind, User
from apps.billing import ledger
from apps.billing.models import EntryKind, LedgerEntry
from apps.jobs import lifecycle, submission
from apps.jobs.models import Job, JobState
from tests.accounts.helpers import all_team_data
from tests.stack import VIDEO, finished_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_storage")]

MEMBERS = ("alice", "bob", "carol")
QUEUED_LINK = "https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef"
FAILED_LINK = "https://sora.chatgpt.com/p/s_fedcba9876543210fedcba9876543210"


def in_team(team: Team, person: User) -> Membership:
    return Membership.objects.select_related("team", "user").get(team=team, user=person)


class CarolsJobs:
    """Three jobs Carol submitted in Acme: one done, one queued, one failed."""

    def __init__(self, acme: Team, carol: User) -> None:
        ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Acme launch promo")
        carols = in_team(acme, carol)
        self.done = finished_job(carols)
        [self.queued] = submission.submit_jobs(membership=carols, links=[QUEUED_LINK])
        [self.failed] = submission.submit_jobs(membership=carols, links=[FAILED_LINK])
        lifecycle.fail_job(self.failed, code="kie_500", message="Kie failed.")


@pytest.fixture
def carols_jobs(acme: Team, carol: User) -> CarolsJobs:
    return CarolsJobs(acme, carol)


# action: (method, url name, which of Carol's jobs)
ACTIONS = {
    "job page": ("get", "jobs:detail", "done"),
    "download": ("get", "jobs:download", "done"),
    "preview": ("get", "jobs:preview", "done"),
    "retry": ("post", "jobs:retry", "failed"),
    "cancel": ("post", "jobs:cancel", "queued"),
}


def act(client: Client, action: str, jobs: CarolsJobs, *, under: Team | None = None):
    """Does `action` on one of Carol's jobs, at its address under `under` (default: Acme)."""
    method, name, which = ACTIONS[action]
    job: Job = getattr(jobs, which)
    team = under or job.team
    return getattr(client, method)(reverse(name, args=[team.public_id, job.public_id]))


def personal_team(person: User) -> Team:
    return Team.objects.get(memberships__user=person, is_personal=True)


def delete(login, alice: User, team: Team) -> None:
    # A team is deleted only once none of its videos is in flight (accounts' one rule).
    for job in Job.objects.filter(team=team).in_flight():
        lifecycle.cancel_job(job)
    response = login(alice).post(
        reverse("accounts:delete_team", args=[team.public_id]), {"confirm_name": team.name}
    )
    assert response.status_code == 302
    assert Team.objects.get(pk=team.pk).is_archived


# --- Members and outsiders -------------------------------------------------------------------


@pytest.mark.parametrize("who", MEMBERS)
def test_every_member_opens_and_downloads_a_teammates_job(request, login, carols_jobs, who):
    client = login(request.getfixturevalue(who))

    page = act(client, "job page", carols_jobs)
    download = act(client, "download", carols_jobs)
    preview = act(client, "preview", carols_jobs)

    assert page.status_code == 200
    assert "Submitted by</dt><dd>carol@example.com" in page.text
    assert b"".join(download.streaming_content) == VIDEO
    assert preview["Content-Disposition"].startswith("inline")


@pytest.mark.parametrize("who", MEMBERS)
def test_every_member_retries_a_teammates_failed_job_as_their_own(
    request, login, acme, carols_jobs, who
):
    person = request.getfixturevalue(who)

    response = act(login(person), "retry", carols_jobs)

    assert response.status_code == 302
    retry = Job.objects.get(retry_of=carols_jobs.failed)
    assert (retry.team, retry.created_by, retry.state) == (acme, person, JobState.QUEUED)


@pytest.mark.parametrize("who", MEMBERS)
def test_every_member_cancels_a_teammates_queued_job(request, login, carols_jobs, who):
    response = act(login(request.getfixturevalue(who)), "cancel", carols_jobs)

    assert response.status_code == 302
    carols_jobs.queued.refresh_from_db()
    assert carols_jobs.queued.state == JobState.CANCELED


@pytest.mark.parametrize("action", ACTIONS)
def test_an_outsider_gets_404_for_every_job_action_and_nothing_changes(
    login, charlie, carols_jobs, action
):
    client = login(charlie)
    before = all_team_data()

    response = act(client, action, carols_jobs)

    assert response.status_code == 404
    assert all_team_data() == before


@pytest.mark.parametrize("action", ACTIONS)
def test_an_outsider_gets_404_for_a_teams_job_under_his_own_teams_address(
    login, charlie, carols_jobs, action
):
    before = all_team_data()

    response = act(login(charlie), action, carols_jobs, under=personal_team(charlie))

    assert response.status_code == 404
    assert all_team_data() == before


@pytest.mark.parametrize("action", ACTIONS)
def test_a_member_gets_404_for_a_teams_job_under_another_of_her_teams(
    login, alice, carols_jobs, action
):
    """Alice may see the job, but only at Acme's address: her personal team does not have it."""
    before = all_team_data()

    response = act(login(alice), action, carols_jobs, under=personal_team(alice))

    assert response.status_code == 404
    assert all_team_data() == before


@pytest.mark.parametrize("who", MEMBERS)
def test_every_member_sees_the_teams_jobs_on_the_dashboard(request, login, acme, carols_jobs, who):
    client = login(request.getfixturevalue(who))

    dashboard = client.get(reverse("jobs:dashboard", args=[acme.public_id])).text
    table = client.get(
        reverse("jobs:table", args=[acme.public_id]), headers={"HX-Request": "true"}
    ).text

    for page in (dashboard, table):
        assert carols_jobs.done.video_id in page
        assert "carol@example.com" in page


def test_an_outsider_gets_404_for_the_teams_dashboard_and_table(
    login, charlie, carol, acme, carols_jobs
):
    client = login(charlie)

    for name in ("jobs:dashboard", "jobs:table"):
        response = client.get(reverse(name, args=[acme.public_id]), {"by": carol.pk})
        assert response.status_code == 404
        assert carols_jobs.done.video_id not in response.text


def test_an_outsider_filtering_his_own_table_by_a_member_sees_nothing_of_hers(
    login, charlie, carol, carols_jobs
):
    page = login(charlie).get(
        reverse("jobs:dashboard", args=[personal_team(charlie).public_id]), {"by": carol.pk}
    )

    assert page.status_code == 200
    assert carols_jobs.done.video_id not in page.text
    assert "carol@example.com" not in page.text


def test_an_outsider_cannot_submit_to_the_team_and_nothing_is_created(
    login, charlie, acme, carols_jobs
):
    before = all_team_data()

    response = login(charlie).post(
        reverse("jobs:submit", args=[acme.public_id]),
        {"links": QUEUED_LINK, "owns_videos": "on"},
    )

    assert response.status_code == 404
    assert all_team_data() == before


# --- After Acme is deleted -------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("who", MEMBERS)
def test_a_deleted_teams_jobs_are_404_for_its_former_members_and_nothing_changes(
    request, login, alice, acme, carols_jobs, who, action
):
    client = login(request.getfixturevalue(who))
    delete(login, alice, acme)
    before = all_team_data()

    response = act(client, action, carols_jobs)

    assert response.status_code == 404
    assert all_team_data() == before


@pytest.mark.parametrize("who", MEMBERS)
def test_a_deleted_team_leaves_the_dashboard_and_the_switcher(
    request, login, alice, acme, carols_jobs, who
):
    client = login(request.getfixturevalue(who))
    client.post(reverse("accounts:switch_team"), {"team": acme.public_id})

    delete(login, alice, acme)

    assert client.get(reverse("jobs:dashboard", args=[acme.public_id])).status_code == 404
    page = client.get(reverse("dashboard"), follow=True).text
    assert f"Working in {who}&#x27;s team" in page
    assert str(acme.public_id) not in page
    assert carols_jobs.done.video_id not in page


# --- People who go ---------------------------------------------------------------------------


@pytest.fixture
def bobs_job(acme: Team, bob: User) -> Job:
    ledger.grant(team=acme, credits=1000, key="promo:acme", memo="Acme launch promo")
    return finished_job(in_team(acme, bob))


def test_a_removed_members_jobs_stay_in_the_team_under_their_name(
    login, alice, bob, acme, bobs_job
):
    owner = login(alice)

    owner.post(reverse("accounts:remove_member", args=[acme.public_id, in_team(acme, bob).pk]))

    bobs_job.refresh_from_db()
    assert (bobs_job.team, bobs_job.created_by, bobs_job.state) == (acme, bob, JobState.SUCCEEDED)
    assert LedgerEntry.objects.filter(job=bobs_job, kind=EntryKind.CAPTURE).exists()
    job_page = owner.get(
        reverse("jobs:detail", args=[bobs_job.team.public_id, bobs_job.public_id])
    ).text
    assert "Submitted by</dt><dd>bob@example.com" in job_page
    dashboard = owner.get(reverse("jobs:dashboard", args=[acme.public_id])).text
    assert re.search(rf"{bobs_job.video_id}</a>.*?bob@example.com", dashboard, re.S)
    activity = owner.get(reverse("accounts:activity", args=[acme.public_id])).text
    assert re.search(r"Removed</td>\s*<td[^>]*>alice@example.com</td>\s*<td[^>]*>bob@", activity)
    assert (
        login(bob)
        .get(reverse("jobs:detail", args=[bobs_job.team.public_id, bobs_job.public_id]))
        .status_code
        == 404
    )


def test_a_deleted_account_leaves_its_jobs_and_its_email_in_the_log(
    login, alice, bob, acme, bobs_job
):
    invitations.invite(
        team=acme, email="dave@example.com", role=Role.MEMBER, invited_by=bob, site_url=""
    )

    bob.delete()

    bobs_job.refresh_from_db()
    assert (bobs_job.team, bobs_job.created_by) == (acme, None)
    assert LedgerEntry.objects.filter(job=bobs_job).count() == 2  # hold, capture
    owner = login(alice)
    job_page = owner.get(
        reverse("jobs:detail", args=[bobs_job.team.public_id, bobs_job.public_id])
    ).text
    assert "Submitted by</dt><dd>a former member" in job_page
    invited = TeamEvent.objects.get(kind=TeamEventKind.INVITED)
    assert (invited.actor, invited.actor_email) == (None, "bob@example.com")
    activity = owner.get(reverse("accounts:activity", args=[acme.public_id])).text
    assert re.search(r"Invited</td>\s*<td[^>]*>bob@example.com</td>", activity)
