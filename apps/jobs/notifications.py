"""Telling people when their videos are done: one email per submission (a paste or an upload
batch), once all its jobs have ended, to the person who sent it unless they turned it off, and
unless every video of it was canceled (whoever canceled them knows).

Runs in a worker after the job's final move has committed (see `queue.job_finished`), never
inside it: a slow mail server must not hold up a transition.
"""

import logging
import uuid

from django.db import IntegrityError, transaction
from django.urls import reverse

from apps import plural
from apps.accounts.emails import send_template, site_url
from apps.billing import low_balance
from apps.jobs import events
from apps.jobs.models import BatchNotice, Job, JobState

logger = logging.getLogger("unmark.jobs")


def job_finished(*, job_id: int) -> None:
    """What follows a job's end: the batch email if it was the last of its submission, and the
    low-balance check (a refund may lift the team back above its threshold)."""
    job = Job.objects.select_related("team").filter(pk=job_id).first()
    if job is None:
        return
    if job.submission_id is not None:
        notify_batch_finished(submission_id=job.submission_id)
    low_balance.check(team=job.team)


def notify_batch_finished(*, submission_id: uuid.UUID) -> bool:
    """Emails the submitter once every job of the submission has ended. True if it sent now."""
    jobs = list(
        Job.objects.filter(submission_id=submission_id)
        .select_related("created_by", "team")
        .order_by("submission_index", "id")
    )
    if not jobs or any(job.is_in_flight for job in jobs):
        return False
    done = [job for job in jobs if job.state == JobState.SUCCEEDED]
    failed = [job for job in jobs if job.state == JobState.FAILED]
    canceled = [job for job in jobs if job.state == JobState.CANCELED]
    try:
        with transaction.atomic():
            BatchNotice.objects.create(
                submission_id=submission_id, succeeded=len(done), failed=len(jobs) - len(done)
            )
            # The notice makes this once per submission, for webhooks as for the email.
            events.batch_finished(submission_id=submission_id, jobs=jobs)
    except IntegrityError:
        return False  # another worker saw the last job end too, and told them
    person = jobs[0].created_by
    if person is None or not person.email_when_batch_finishes or jobs[0].team.is_archived:
        return False
    if not done and not failed:
        return False  # every video was canceled, by someone who saw it happen: no news
    base = site_url()
    send_template(
        "jobs/email/batch_finished",
        {
            **batch_words(
                team=jobs[0].team.name, total=len(jobs), done=len(done), failed=len(failed)
            ),
            "done": [(job, base + job.get_absolute_url()) for job in done],
            "failed": [(job, base + job.get_absolute_url()) for job in failed],
            "canceled": [(job, base + job.get_absolute_url()) for job in canceled],
            "dashboard": base + jobs[0].team.get_absolute_url(),
            "settings_link": base + reverse("notifications"),
        },
        [person.email],
        headers={"List-Unsubscribe": f"<{base}{reverse('notifications')}>"},
    )
    logger.info("batch email sent", extra={"submission": submission_id, "jobs": len(jobs)})
    return True


def batch_words(*, team: str, total: int, done: int, failed: int) -> dict[str, str]:
    """The email's subject and the lines over its lists, said as a person would: "Both videos
    … are ready", "All 3 videos …", "Neither video … could be processed"."""
    sent = f"you sent to {team}"
    if done == total:
        ready = {1: f"The video {sent} is ready", 2: f"Both videos {sent} are ready"}.get(
            done, f"All {done} videos {sent} are ready"
        )
    else:
        ready = f"{done} of the {total} videos {sent} {'is' if done == 1 else 'are'} ready"
    if done:
        not_processed = (
            "This one could not be processed" if failed == 1 else "These could not be processed"
        )
    elif failed == total:
        not_processed = {
            1: f"The video {sent} could not be processed",
            2: f"Neither video {sent} could be processed",
        }.get(failed, f"None of the {failed} videos {sent} could be processed")
    else:
        not_processed = f"{plural.videos(failed)} of the {total} {sent} could not be processed"
    if done == total:
        subject = "Your video is ready" if done == 1 else f"Your {done} videos are ready"
    elif not done:
        subject = (
            "Your video could not be processed"
            if failed == 1
            else f"{plural.videos(failed)} could not be processed"
        )
    else:
        subject = f"{plural.videos(done)} ready, {total - done} not"
    return {"subject": subject, "ready": ready, "not_processed": not_processed}
