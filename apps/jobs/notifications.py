"""Telling people when their videos are done: one email per submission (a paste or an upload
batch), once all its jobs have ended, to the person who sent it unless they turned it off.

Runs in a worker after the job's final move has committed (see `queue.job_finished`), never
inside it: a slow mail server must not hold up a transition.
"""

import logging
import uuid

from django.db import IntegrityError, transaction
from django.urls import reverse

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
    not_done = [job for job in jobs if job.state != JobState.SUCCEEDED]
    try:
        with transaction.atomic():
            BatchNotice.objects.create(
                submission_id=submission_id, succeeded=len(done), failed=len(not_done)
            )
            # The notice makes this once per submission, for webhooks as for the email.
            events.batch_finished(submission_id=submission_id, jobs=jobs)
    except IntegrityError:
        return False  # another worker saw the last job end too, and told them
    person = jobs[0].created_by
    if person is None or not person.email_when_batch_finishes or jobs[0].team.is_archived:
        return False
    base = site_url()
    send_template(
        "jobs/email/batch_finished",
        {
            "done": [(job, base + job.get_absolute_url()) for job in done],
            "not_done": [(job, base + job.get_absolute_url()) for job in not_done],
            "team": jobs[0].team,
            "total": len(jobs),
            "dashboard": base + jobs[0].team.get_absolute_url(),
            "settings_link": base + reverse("notifications"),
        },
        [person.email],
        headers={"List-Unsubscribe": f"<{base}{reverse('notifications')}>"},
    )
    logger.info("batch email sent", extra={"submission": submission_id, "jobs": len(jobs)})
    return True
