"""Staff actions on jobs declare the permission they need."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from apps.accounts.models import User
from apps.billing import ledger
from apps.jobs import submission
from apps.jobs.models import InputKind, Job, JobState

pytestmark = pytest.mark.django_db

LINK = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"


def staff_with(*codenames: str) -> User:
    person = User.objects.create_user(f"{'-'.join(codenames)}@unmark.example", is_staff=True)
    person.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return person


@pytest.fixture
def queued_job(alice) -> Job:
    membership = alice.memberships.select_related("team", "user").get()
    [job] = submission.submit_jobs(membership=membership, links=[LINK])
    return job


def fail_and_release(client, job: Job):
    return client.post(
        reverse("admin:jobs_job_changelist"),
        {"action": "fail_and_release", "_selected_action": [job.pk]},
    )


def test_view_only_staff_are_not_offered_fail_and_release_and_cannot_post_it(login, queued_job):
    clerk = login(staff_with("view_job"))

    page = clerk.get(reverse("admin:jobs_job_changelist"))
    fail_and_release(clerk, queued_job)

    assert page.status_code == 200
    assert "fail_and_release" not in page.text
    assert "retry_selected" not in page.text
    queued_job.refresh_from_db()
    assert queued_job.state == JobState.QUEUED
    assert ledger.available_credits(queued_job.team) == 20


def test_staff_who_may_change_jobs_fail_and_release_them(login, queued_job):
    operator = login(staff_with("view_job", "change_job"))

    assert "fail_and_release" in operator.get(reverse("admin:jobs_job_changelist")).text
    fail_and_release(operator, queued_job)

    queued_job.refresh_from_db()
    assert queued_job.state == JobState.FAILED
    assert ledger.available_credits(queued_job.team) == 30


def test_the_job_list_shows_each_videos_file_name(login, queued_job):
    Job.objects.filter(pk=queued_job.pk).update(
        input_kind=InputKind.FILE, original_name="forest-portrait.mp4"
    )
    clerk = login(staff_with("view_job"))

    listed = clerk.get(reverse("admin:jobs_job_changelist")).content.decode()
    found = clerk.get(reverse("admin:jobs_job_changelist"), {"q": "forest-portrait"})

    assert '<td class="field-video">forest-portrait.mp4</td>' in listed
    assert list(found.context["cl"].result_list) == [queued_job]
