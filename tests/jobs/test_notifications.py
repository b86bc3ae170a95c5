"""The "your videos are done" email: one per submission, after its last job ends, with what
worked and what did not, linked; each person may turn it off."""

import re

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from apps.accounts.emails import compose
from apps.accounts.models import Team
from apps.billing.models import Wallet
from apps.jobs import lifecycle, submission
from apps.jobs.models import BatchNotice, Job, JobState
from apps.jobs.notifications import batch_words, notify_batch_finished
from config.local_mail import LocalMailBackend
from tests.stack import SORA_LINK, VIDEO

pytestmark = pytest.mark.django_db

OTHER = "https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef"
THIRD = "https://sora.chatgpt.com/p/s_fedcba9876543210fedcba9876543210"


def succeed(job: Job) -> None:
    job.move(JobState.SUBMITTED, task_id=f"task-{job.pk}")
    job.move(JobState.DOWNLOADING)
    lifecycle.succeed_job(job, name=f"results/{job.pk}.mp4", size=len(VIDEO), sha256="x" * 64)


def test_one_email_tells_what_succeeded_and_failed_once_the_whole_batch_ended(
    alice_membership, run_tasks, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://unmark.example"
    Wallet.objects.filter(team=alice_membership.team).update(balance=100)
    ok, broken, later = submission.submit_jobs(
        membership=alice_membership, links=[SORA_LINK, OTHER, THIRD]
    )
    with django_capture_on_commit_callbacks(execute=True):
        succeed(ok)
        lifecycle.fail_job(broken, code="kie_500", message="The video could not be processed.")
    run_tasks()
    assert mail.outbox == []  # one job is still in flight

    with django_capture_on_commit_callbacks(execute=True):
        succeed(later)
    run_tasks()

    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == f"[{settings.PRODUCT_NAME}] 2 videos ready, 1 not"
    assert "2 of the 3 videos you sent to" in message.body
    assert f"https://unmark.example{ok.get_absolute_url()}" in message.body
    assert f"https://unmark.example{later.get_absolute_url()}" in message.body
    assert (
        f"{broken.video_id}: The video could not be processed.\n"
        f"  https://unmark.example{broken.get_absolute_url()}" in message.body
    )
    assert "kie_500" not in message.body
    assert f"https://unmark.example{reverse('notifications')}" in message.body
    assert message.extra_headers["List-Unsubscribe"].startswith("<https://unmark.example/")
    assert isinstance(message, EmailMultiAlternatives)
    content, mimetype = message.alternatives[0]
    html = str(content)
    assert mimetype == "text/html"
    assert f'href="https://unmark.example{ok.get_absolute_url()}"' in html
    assert "127.0.0.1" not in str(message.body) + html


def test_the_last_job_seen_twice_still_sends_one_email(
    alice_membership, run_tasks, django_capture_on_commit_callbacks
):
    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.fail_job(job, code="timeout", message="It took too long.")

    assert job.submission_id is not None
    assert notify_batch_finished(submission_id=job.submission_id) is True
    assert notify_batch_finished(submission_id=job.submission_id) is False
    run_tasks()  # the follow-up queued by the failure finds the batch already told

    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.endswith("Your video could not be processed")
    assert BatchNotice.objects.get().failed == 1


def test_a_batch_the_sender_canceled_whole_sends_no_failure_email(
    alice_membership, run_tasks, django_capture_on_commit_callbacks
):
    jobs = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK, OTHER])
    with django_capture_on_commit_callbacks(execute=True):
        for job in jobs:
            assert lifecycle.cancel_job(job)
    run_tasks()

    assert mail.outbox == []
    assert BatchNotice.objects.get().failed == 2  # the batch is still told once, to webhooks


def test_a_canceled_video_beside_a_ready_one_is_said_canceled_not_failed(
    alice_membership, run_tasks, django_capture_on_commit_callbacks
):
    ok, dropped = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK, OTHER])
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.cancel_job(dropped)
        succeed(ok)
    run_tasks()

    (message,) = mail.outbox
    assert message.subject.endswith("1 video ready, 1 not")
    assert "1 of the 2 videos you sent to" in message.body
    assert f"Canceled, so nothing was charged for it:\n\n- {dropped.video_id}" in message.body
    assert "could not be processed" not in message.body


@pytest.mark.parametrize(
    ("total", "done", "failed", "ready", "not_processed"),
    [
        (1, 1, 0, "The video you sent to Acme is ready", None),
        (2, 2, 0, "Both videos you sent to Acme are ready", None),
        (3, 3, 0, "All 3 videos you sent to Acme are ready", None),
        (2, 0, 2, None, "Neither video you sent to Acme could be processed"),
        (3, 0, 3, None, "None of the 3 videos you sent to Acme could be processed"),
        (
            3,
            2,
            1,
            "2 of the 3 videos you sent to Acme are ready",
            "This one could not be processed",
        ),
    ],
)
def test_the_email_counts_videos_as_people_say_them(total, done, failed, ready, not_processed):
    words = batch_words(team="Acme", total=total, done=done, failed=failed)

    if ready:
        assert words["ready"] == ready
    if not_processed:
        assert words["not_processed"] == not_processed
    assert "All 2" not in str(words)


def test_a_person_who_turned_it_off_gets_no_email(
    alice, alice_membership, run_tasks, login, django_capture_on_commit_callbacks
):
    response = login(alice).post(reverse("notifications"), {})  # the box left unticked
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.email_when_batch_finishes is False

    [job] = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])
    with django_capture_on_commit_callbacks(execute=True):
        succeed(job)
    run_tasks()

    assert mail.outbox == []
    assert BatchNotice.objects.filter(submission_id=str(job.submission_id)).exists()


def test_jobs_of_one_paste_share_a_submission_and_a_retry_is_a_new_one(alice_membership):
    first, second = submission.submit_jobs(membership=alice_membership, links=[SORA_LINK, OTHER])
    lifecycle.fail_job(first, code="x", message="Failed.")
    retry = submission.retry_job(membership=alice_membership, job=first)

    assert first.submission_id == second.submission_id is not None
    assert (first.submission_index, second.submission_index) == (0, 1)
    assert retry.submission_id not in (None, first.submission_id)


def test_local_runs_write_each_email_under_var_mail_and_print_its_first_link_whole(
    tmp_path, capsys
):
    link = "https://unmark.example/accounts/confirm-email/" + "MQ:1vB" * 20 + "/"
    message = compose(subject="Please confirm", text=f"Open this:\n{link}\n", to=["a@b.example"])
    LocalMailBackend(folder=tmp_path).send_messages([message])

    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1
    assert f"Please confirm · {link}" in printed[0]
    (eml,) = tmp_path.glob("*.eml")
    (txt,) = tmp_path.glob("*.txt")
    assert link in txt.read_text()
    assert b"text/html" in eml.read_bytes()
    assert re.search(r"Subject: \[.+\] Please confirm", eml.read_text())


def test_the_subject_prefix_is_the_product_name():
    assert f"[{settings.PRODUCT_NAME}] " == settings.ACCOUNT_EMAIL_SUBJECT_PREFIX


def test_a_paste_that_takes_credits_below_the_threshold_emails_the_owner_once(
    sim_stack, alice_membership, run_tasks, django_capture_on_commit_callbacks
):
    team = alice_membership.team
    Team.objects.filter(pk=team.pk).update(low_balance_threshold=25)

    with django_capture_on_commit_callbacks(execute=True):
        submission.submit_jobs(membership=alice_membership, links=[SORA_LINK])  # 20 left
    run_tasks()
    with django_capture_on_commit_callbacks(execute=True):
        submission.submit_jobs(membership=alice_membership, links=[OTHER])  # 10 left
    run_tasks()

    low = [m for m in mail.outbox if "running low" in str(m.subject)]
    assert len(low) == 1
    assert low[0].to == ["alice@example.com"]
    assert "20 credits available" in str(low[0].body)
