import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import Count, Max, Q, Sum
from django.urls import reverse
from django.utils import timezone

from apps.jobs.links import share_page
from apps.removal.base import InputKind
from apps.removal.registry import get_provider

logger = logging.getLogger("unmark.jobs")


class JobState(models.TextChoices):
    # Labels are what people read: stages in plain words, never a vendor's name.
    QUEUED = "queued", "Waiting"
    SUBMITTED = "submitted", "Sending"
    PROCESSING = "processing", "Removing the watermark"
    DOWNLOADING = "downloading", "Saving"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"


# Where each stage starts and ends on the progress bar people watch: removing the watermark
# takes most of the time, so it gets most of the bar.
STAGE_SPAN = {
    JobState.QUEUED: (0, 5),
    JobState.SUBMITTED: (5, 10),
    JobState.PROCESSING: (10, 90),
    JobState.DOWNLOADING: (90, 99),
}
# How long removal usually takes when the provider gives no percentage: the estimate grows
# towards it and never claims more than ESTIMATE_CEILING % before the provider says it is done.
TYPICAL_REMOVAL_SECONDS = 60
ESTIMATE_CEILING = 95
ESTIMATE_REFRESH_SECONDS = 4

# States a job never leaves (but for EXPIRED, which only a succeeded job enters).
FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED})
# The moves that end a job's run (expiring a result later is not news to anyone).
ENDINGS = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})
IN_FLIGHT_STATES = frozenset(
    {JobState.QUEUED, JobState.SUBMITTED, JobState.PROCESSING, JobState.DOWNLOADING}
)
# States whose credits were captured: the team paid for these videos.
CHARGED_STATES = frozenset({JobState.SUCCEEDED, JobState.EXPIRED})
# States from which a person may try a video again (as a new job).
RETRYABLE_STATES = frozenset({JobState.FAILED, JobState.CANCELED, JobState.EXPIRED})

# Every move a job may make, and nothing else: `Job.move` refuses the rest.
MOVES: dict[JobState, frozenset[JobState]] = {
    # sent; canceled by its team; failed (too late to send, staff)
    JobState.QUEUED: frozenset({JobState.SUBMITTED, JobState.CANCELED, JobState.FAILED}),
    # the provider took it; finished at once; back in line (busy, unavailable); failed;
    # canceled by its team (a provider that can stop its task)
    JobState.SUBMITTED: frozenset(
        {
            JobState.PROCESSING,
            JobState.DOWNLOADING,
            JobState.QUEUED,
            JobState.FAILED,
            JobState.CANCELED,
        }
    ),
    # finished; failed; back in line when its server lost the task (an SWC restart or stall);
    # canceled by its team (a provider that can stop its task)
    JobState.PROCESSING: frozenset(
        {JobState.DOWNLOADING, JobState.FAILED, JobState.QUEUED, JobState.CANCELED}
    ),
    # saved; failed; back in line when the server lost the finished video before we saved it
    JobState.DOWNLOADING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.QUEUED}),
    # the result is deleted after the retention period
    JobState.SUCCEEDED: frozenset({JobState.EXPIRED}),
    JobState.FAILED: frozenset(),
    JobState.CANCELED: frozenset(),
    JobState.EXPIRED: frozenset(),
}


class ForbiddenMove(Exception):
    """A move the table does not allow: always a bug in the caller."""


def credits_to_micros(credits: int) -> int:
    """Credits at their list price (`USD_PER_CREDIT`), in millionths of a dollar, exactly."""
    return int(credits * settings.USD_PER_CREDIT * 1_000_000)


def new_callback_token() -> str:
    return secrets.token_urlsafe(24)


def human_duration(seconds: float) -> str:
    """A span of time as people say it: "0.4 seconds", "20.9 seconds", "2 min 5 s"."""
    if seconds < 60:
        return f"{seconds:.1f} seconds"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


class JobQuerySet(models.QuerySet["Job"]):
    def in_flight(self) -> "JobQuerySet":
        return self.filter(state__in=IN_FLIGHT_STATES)

    def due(self, now: datetime) -> "JobQuerySet":
        return self.in_flight().filter(next_check_at__lte=now)

    def pulse(self) -> "JobsPulse":
        """A summary that changes whenever any job in the set changes: lets pages skip
        refreshing, and stop refreshing once nothing is in flight."""
        summary = self.aggregate(
            count=Count("id"),
            active=Count("id", filter=Q(state__in=IN_FLIGHT_STATES)),
            latest=Max("updated_at"),
            estimating=Count(
                "id", filter=Q(state=JobState.PROCESSING, provider_progress__isnull=True)
            ),
        )
        latest = summary["latest"].timestamp() if summary["latest"] else 0.0
        return JobsPulse(summary["count"], summary["active"], latest, summary["estimating"] > 0)

    def money(self) -> "Money":
        """Videos, what their teams were charged, what they cost us and the margin, over the
        set: failed and canceled jobs are charged nothing, but what they cost us counts."""
        summary = self.aggregate(
            videos=Count("id"),
            charged_videos=Count("id", filter=Q(state__in=CHARGED_STATES)),
            charged_credits=Sum("credits", filter=Q(state__in=CHARGED_STATES), default=0),
            cost=Sum("provider_cost_micros", default=0),
            priced=Count("provider_cost_micros"),
        )
        return Money(
            videos=summary["videos"],
            charged_videos=summary["charged_videos"],
            charged_micros=credits_to_micros(summary["charged_credits"]),
            cost_micros=summary["cost"],
            priced_videos=summary["priced"],
        )

    def already_taken(
        self, *, links: Sequence[str] = (), sha256s: Sequence[str] = ()
    ) -> dict[str, "Job"]:
        """The newest job for each of these links (the same share page, whatever its share
        token) or file digests (SHA-256 of the original) that still keeps its result or is
        being cleaned now, keyed by link or digest as given: what a person would be charged
        for again."""
        if not links and not sha256s:
            return {}
        link_of = {share_page(link): link for link in links}
        same_video = Q(input_kind=InputKind.FILE, original_sha256__in=sha256s)
        for page in link_of:
            same_video |= Q(input_kind=InputKind.LINK) & (
                Q(source_url=page) | Q(source_url__startswith=page + "?")
            )
        taken = self.filter(
            (Q(state=JobState.SUCCEEDED) & ~Q(result_file="")) | Q(state__in=IN_FLIGHT_STATES)
        )
        found: dict[str, Job] = {}
        for job in taken.filter(same_video).order_by("-created_at", "-id"):
            key = link_of[share_page(job.source_url)] if job.source_url else job.original_sha256
            found.setdefault(key, job)
        return found


@dataclass(frozen=True)
class Money:
    """What a set of jobs brought in and cost us, in millionths of a dollar."""

    videos: int
    charged_videos: int
    charged_micros: int
    cost_micros: int
    # Jobs with a recorded cost (those never sent, or not yet finished, have none).
    priced_videos: int

    @property
    def margin_micros(self) -> int:
        return self.charged_micros - self.cost_micros


@dataclass(frozen=True)
class JobsPulse:
    count: int
    active: int
    latest: float
    # Some job's progress is an estimate from the time spent: it moves without the job changing.
    estimating: bool = False

    @staticmethod
    def latest_in(fingerprint: str) -> float | None:
        """The latest change time a fingerprint was made from, or None if it is not one."""
        try:
            return float(fingerprint.split("-")[2])
        except (IndexError, ValueError):
            return None

    @property
    def fingerprint(self) -> str:
        base = f"{self.count}-{self.active}-{self.latest:.6f}"
        if self.estimating:
            # Changes every few seconds, so the estimate on the page moves on.
            return f"{base}-{int(time.time()) // ESTIMATE_REFRESH_SECONDS}"
        return base


class Job(models.Model):
    """One Sora video sent for watermark removal, paid for by its team's credits."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
    )
    retry_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries"
    )
    # The form submission (a paste or an upload batch) that made this job, and its place in it:
    # sending the same form twice collides here, so the database refuses the copies.
    submission_id = models.UUIDField(null=True, blank=True)
    submission_index = models.PositiveSmallIntegerField(null=True, blank=True)
    input_kind = models.CharField(max_length=8, choices=InputKind.choices, default=InputKind.LINK)
    source_url = models.CharField(max_length=500, blank=True)

    # An uploaded original. Its storage name is always one we generated: the person's file
    # name is kept only for display and never reaches a path.
    original_file = models.FileField(upload_to="originals/%Y/%m/", max_length=200, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    original_size = models.BigIntegerField(null=True, blank=True)
    original_sha256 = models.CharField(max_length=64, blank=True)
    # What probing the content found: container, codec, width, height, fps, duration.
    media_info = models.JSONField(default=dict, blank=True)
    original_poster = models.FileField(upload_to="posters/%Y/%m/", max_length=200, blank=True)
    result_poster = models.FileField(upload_to="posters/%Y/%m/", max_length=200, blank=True)

    # The provider that has the job, or, while it waits in line, the one it is in line for
    # (the dispatcher may still send it to another): `taken_by` is what the public is told.
    provider = models.CharField(max_length=20)
    # What customers read after "Cleaned ": "by our GPU servers", "on Replicate", "by Kie.ai".
    # Kept when a provider takes the job, so it never changes with the configuration later and
    # never names a machine; empty while no provider has it (waiting in line, or never sent).
    cleaned_by = models.CharField(max_length=100, blank=True)
    task_id = models.CharField(max_length=100, blank=True, db_index=True)
    # Which of the provider's machines took the task (an SWC server of the pool), if it says:
    # for staff only.
    provider_server = models.CharField(max_length=200, blank=True)
    # The provider's own percentage for the running task, where it gives one.
    provider_progress = models.PositiveSmallIntegerField(null=True, blank=True)
    # Times the video failed in a way another try may not repeat (SWC's ERROR gives no reason).
    provider_errors = models.PositiveSmallIntegerField(default=0)
    # Secret part of this job's callback URL: a callback names its job without revealing it.
    callback_token = models.CharField(max_length=64, unique=True, default=new_callback_token)
    # When the last callback that led to a status query came: a burst of callbacks makes one.
    callback_at = models.DateTimeField(null=True, blank=True)

    state = models.CharField(max_length=12, choices=JobState.choices, default=JobState.QUEUED)
    credits = models.PositiveIntegerField()
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times the worker has tried to send this job to the provider."
    )
    checks = models.PositiveIntegerField(
        default=0, help_text="Times the provider has been asked for this job's status."
    )
    download_attempts = models.PositiveSmallIntegerField(default=0)
    next_check_at = models.DateTimeField(
        null=True, blank=True, help_text="When the worker should next look at this job."
    )
    result_url = models.URLField(max_length=2000, blank=True, help_text="Provider's result link.")

    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)

    result_file = models.FileField(upload_to="results/%Y/%m/", max_length=200, blank=True)
    result_size = models.BigIntegerField(null=True, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    # What the result's Content Credentials say (`apps.provenance.Credentials.as_json()`),
    # recorded when it was signed; None for a result delivered unsigned (signing switched off).
    credentials = models.JSONField(null=True, blank=True)
    provider_cost_ms = models.PositiveIntegerField(null=True, blank=True)
    # What this video cost us at the provider, in millionths of a dollar (integers, like credits):
    # Kie's fixed price, Replicate's predict time or an SWC server's GPU time, times its price.
    provider_cost_micros = models.BigIntegerField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When the stored result is deleted."
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["team", "-created_at"], name="job_team_recent"),
            models.Index(fields=["state", "next_check_at"], name="job_state_due"),
            models.Index(fields=["team", "original_sha256"], name="job_team_original"),
            # The operations page and /metrics count jobs by when, state and provider: these
            # answer from the index alone (PostgreSQL's index-only scans).
            models.Index(
                fields=["created_at", "state", "provider"], name="job_created_state_provider"
            ),
            models.Index(
                fields=["state", "provider", "created_at"], name="job_state_provider_created"
            ),
            # The ops roll-ups look every minute for the days whose jobs changed since.
            models.Index(fields=["updated_at", "created_at"], name="job_changed_since"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["submission_id", "submission_index"], name="job_one_per_submission_item"
            )
        ]

    def __str__(self) -> str:
        return f"Job {self.public_id} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse(
            "jobs:detail", kwargs={"team_id": self.team.public_id, "public_id": self.public_id}
        )

    @property
    def callback_url(self) -> str | None:
        """Where the provider calls back for this job; None when the app is not reachable from
        outside. Each provider has its own route, since each signs its callbacks its own way."""
        if not settings.PUBLIC_BASE_URL:
            return None
        path = reverse(
            "jobs:callback", kwargs={"provider": self.provider, "token": self.callback_token}
        )
        return f"{settings.PUBLIC_BASE_URL}{path}"

    @property
    def is_in_flight(self) -> bool:
        return self.state in IN_FLIGHT_STATES

    @property
    def stage_percent(self) -> int | None:
        """How far the watermark removal is (0 to 100): the provider's own figure when it gives
        one, else an estimate from the time spent (`stage_is_estimate`). None outside removal."""
        if self.state != JobState.PROCESSING:
            return None
        if self.provider_progress is not None:
            return min(self.provider_progress, 100)
        started = self.submitted_at or self.created_at
        elapsed = (timezone.now() - started).total_seconds()
        return min(int(100 * elapsed / TYPICAL_REMOVAL_SECONDS), ESTIMATE_CEILING)

    @property
    def stage_is_estimate(self) -> bool:
        return self.state == JobState.PROCESSING and self.provider_progress is None

    @property
    def is_retryable(self) -> bool:
        return self.state in RETRYABLE_STATES

    @property
    def is_cancelable(self) -> bool:
        """A job that has not reached the provider yet, or whose task the provider can stop
        (Replicate can; Kie and the SWC pool cannot)."""
        if self.state == JobState.QUEUED:
            return True
        return (
            self.state in (JobState.SUBMITTED, JobState.PROCESSING)
            and bool(self.task_id)
            and get_provider(self.provider).stops_tasks
        )

    @property
    def taken_by(self) -> str | None:
        """The name of the provider that took the job ("swc", "replicate", "kie"), or None
        while none has it: a job waiting in line has no provider yet, whichever one it is in
        line for (the dispatcher chooses when it sends it)."""
        return self.provider if self.cleaned_by else None

    @property
    def is_waiting_at_provider(self) -> bool:
        """The provider accepted the video but has not started it (it waits in a server's
        queue, or for a machine to boot): waiting, not being sent any more."""
        return self.state == JobState.SUBMITTED and bool(self.task_id)

    @property
    def stage_label(self) -> str:
        """The stage in plain words, as the badge and the API's `stage` say it."""
        if self.is_waiting_at_provider:
            return JobState.QUEUED.label
        return self.get_state_display()

    def ahead(self) -> int | None:
        """How many videos go before this one while it waits: in line here (the same kind of
        input, any team's, sent in the order they came), or in its provider's queue once the
        provider accepted it. None when it is not waiting, or the provider does not say."""
        if self.state == JobState.QUEUED:
            earlier = Q(created_at__lt=self.created_at) | Q(
                created_at=self.created_at, pk__lt=self.pk
            )
            return (
                Job.objects.filter(state=JobState.QUEUED, input_kind=self.input_kind)
                .filter(earlier)
                .count()
            )
        if self.is_waiting_at_provider:
            return get_provider(self.provider).tasks_ahead(self.task_id)
        return None

    def where_it_is(self, ahead: int | None = None) -> str:
        """One sentence on where the video is now, for its page; it agrees with the badge and
        never names a machine. Empty when the timeline says it all (canceled, never sent).
        `ahead` is `self.ahead()`, when the caller already has it."""
        by = self.cleaned_by
        state = JobState(self.state)
        if state == JobState.QUEUED or self.is_waiting_at_provider:
            if state == JobState.QUEUED:
                what = "a free cleaning server" if self.is_file else "its turn to be sent"
            else:
                what = get_provider(self.provider).waits_for
            ahead = self.ahead() if ahead is None else ahead
            return f"Waiting for {what} ({ahead} ahead)." if ahead else f"Waiting for {what}."
        if not by:
            return ""
        sentences = {
            JobState.SUBMITTED: f"Being sent to be cleaned {by}.",
            JobState.PROCESSING: f"Being cleaned {by}.",
            JobState.DOWNLOADING: f"Cleaned {by}; saving the video.",
            JobState.SUCCEEDED: f"Cleaned {by}.",
            JobState.EXPIRED: f"Cleaned {by}.",
            JobState.FAILED: f"Tried {by}.",
        }
        return sentences.get(state, "")

    @property
    def processing_time(self) -> str:
        """How long the provider worked on it, in words: "20.9 seconds", "2 min 5 s"."""
        if self.provider_cost_ms is None:
            return ""
        return human_duration(self.provider_cost_ms / 1000)

    @property
    def has_result(self) -> bool:
        return self.state == JobState.SUCCEEDED and bool(self.result_file)

    @property
    def badge_class(self) -> str:
        """How the status badge looks: done, failed, ended quietly, or still moving."""
        if self.state == JobState.SUCCEEDED:
            return "badge-ok"
        if self.state == JobState.FAILED:
            return "badge-bad"
        if self.is_in_flight:
            return "badge-accent badge-live"
        return ""

    @property
    def credits_status(self) -> str:
        """What this video did to the team's credits: reserved (until it ends), charged (it
        succeeded) or refunded (it failed or was canceled)."""
        if self.is_in_flight:
            return "reserved"
        if self.state == JobState.SUCCEEDED or self.state == JobState.EXPIRED:
            return "charged"
        return "refunded"

    @property
    def credits_words(self) -> str:
        """What this video did to the credits, in the one wording the list and its page share:
        "10 reserved", "10 charged" or "10 refunded"."""
        return f"{self.credits:,} {self.credits_status}"

    @property
    def charged_micros(self) -> int:
        """What the team paid for this video at the list price of a credit, in millionths of a
        dollar: its credits if it succeeded, nothing if it failed or was canceled (or has not
        ended yet)."""
        if self.state not in CHARGED_STATES:
            return 0
        return credits_to_micros(self.credits)

    @property
    def margin_micros(self) -> int:
        """What we kept of it once the provider was paid (negative when it cost us more)."""
        return self.charged_micros - (self.provider_cost_micros or 0)

    @property
    def progress(self) -> int:
        """The whole bar, 0 to 100: the stage's span, filled by the removal's percentage."""
        if self.state not in STAGE_SPAN:
            return 100
        start, end = STAGE_SPAN[JobState(self.state)]
        percent = self.stage_percent
        if percent is None:
            return start
        return start + (end - start) * percent // 100

    @property
    def announcement(self) -> str:
        """One sentence for a screen reader when the video ends."""
        name = self.original_name or self.video_id
        if self.state == JobState.SUCCEEDED:
            return f"Video {name} is ready."
        if self.state == JobState.FAILED:
            return f"Video {name} failed; its credits were refunded."
        return f"Video {name} is {self.get_state_display().lower()}."

    @property
    def why_not_cancelable(self) -> str:
        """Plain words for an in-flight job that can no longer be canceled."""
        if self.state in (JobState.SUBMITTED, JobState.PROCESSING) and not self.is_cancelable:
            return (
                "It can no longer be canceled: the watermark remover already has it and cannot "
                "be stopped. If it fails, its credits come back by themselves."
            )
        if self.state == JobState.DOWNLOADING:
            return "It can no longer be canceled: the clean video is being saved."
        return ""

    @property
    def is_file(self) -> bool:
        return self.input_kind == InputKind.FILE

    @property
    def video_id(self) -> str:
        """How people recognise their video: the `s_…` part of the share link, or the name of
        the file they uploaded."""
        if self.is_file:
            return self.original_name
        return self.source_url.rsplit("/", 1)[-1].split("?")[0]

    @property
    def download_name(self) -> str:
        if self.is_file:
            stem = self.original_name.rsplit(".", 1)[0]
            # Only characters that are safe in a Content-Disposition header and any file system.
            safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in stem)
            return f"{safe.strip('-')[:60] or 'video'}-unmarked.mp4"
        return f"sora-{self.video_id[:40]}-unmarked.mp4"

    @property
    def submitted_detail(self) -> str:
        return "File uploaded." if self.is_file else "Link submitted."

    def take_back_original(self) -> "Upload":
        """Turns this job's stored original back into an upload (for a new attempt), so the
        file belongs to one job at a time. Call it inside the transaction that submits it."""
        upload = Upload.objects.create(
            team_id=self.team_id,
            created_by=self.created_by,
            file=self.original_file.name,
            name=self.original_name,
            size=self.original_size or 0,
            sha256=self.original_sha256,
            media_info=self.media_info,
            poster=self.original_poster.name,
        )
        Job.objects.filter(pk=self.pk).update(original_file="", original_poster="")
        self.original_file.name, self.original_poster.name = "", ""
        return upload

    def move(self, to_state: JobState, *, detail: str = "", **fields: Any) -> bool:
        """Moves the job on from the state it was read in, unless someone else already did.

        One conditional UPDATE decides the race between workers, callbacks and the sweep;
        the winner records the step in the timeline. Returns whether this call moved it.
        A move `MOVES` does not allow is a bug: it raises `ForbiddenMove` before anything is
        written, so a transaction around it is rolled back whole. Ending a job settles its
        credits and tells people: that is `apps.jobs.lifecycle`, which calls this.
        """
        from_state = JobState(self.state)
        if to_state not in MOVES[from_state]:
            raise ForbiddenMove(f"{from_state} → {to_state} for job {self.public_id}")
        if to_state == JobState.QUEUED:
            # Back in line, nobody has it: whoever sends it next says who cleans it.
            fields.setdefault("cleaned_by", "")
        now = timezone.now()
        with transaction.atomic():
            moved = Job.objects.filter(pk=self.pk, state=from_state).update(
                state=to_state, updated_at=now, **fields
            )
            if not moved:
                return False
            JobEvent.objects.create(
                job=self, from_state=from_state, to_state=to_state, detail=detail[:300]
            )
        self.state, self.updated_at = to_state, now
        for name, value in fields.items():
            setattr(self, name, value)
        logger.info(
            "job state changed",
            extra={"job": self.public_id, "team": self.team_id, "from": from_state, "to": to_state},
        )
        return True

    def note_callback(self, *, window_seconds: float) -> bool:
        """Records a callback; False when another came within the window (and already led to
        a status query). One conditional UPDATE, so concurrent callbacks cannot both win."""
        now = timezone.now()
        return bool(
            Job.objects.filter(pk=self.pk)
            .exclude(callback_at__gt=now - timedelta(seconds=window_seconds))
            .update(callback_at=now)
        )

    def check_within(self, seconds: float) -> bool:
        """Brings the next check of a job its provider is working on to at most `seconds` from
        now (a later one, such as the fallback poll of a job waiting for its callback, moves
        up; a sooner one stays). A callback does this as it enqueues the status query: if the
        worker holding that query dies, the poller still checks the job within seconds. Jobs
        without a task id are left alone: their next check recovers a start that got no
        answer, which a callback must not hurry. True if it moved."""
        soon = timezone.now() + timedelta(seconds=seconds)
        return bool(
            Job.objects.filter(
                Q(next_check_at__gt=soon) | Q(next_check_at__isnull=True),
                pk=self.pk,
                state__in=(JobState.SUBMITTED, JobState.PROCESSING),
            )
            .exclude(task_id="")
            .update(next_check_at=soon)
        )

    def record_task(self, task_id: str, **fields: Any) -> bool:
        """Records the task a send started, only while the job still waits for this very send's
        answer: same state, same attempt, no task yet. A late answer to an earlier send (the
        job was sent again meanwhile) or a second adoption never replaces the task followed."""
        return self._update_while(Q(attempts=self.attempts, task_id=""), task_id=task_id, **fields)

    def touch(self, **fields: Any) -> bool:
        """Updates fields without a state change, only while the job is still in its state."""
        return self._update_while(Q(), **fields)

    def _update_while(self, condition: Q, **fields: Any) -> bool:
        """Updates fields while the job is still in its state and `condition` holds."""
        now = timezone.now()
        updated = Job.objects.filter(condition, pk=self.pk, state=self.state).update(
            updated_at=now, **fields
        )
        if updated:
            self.updated_at = now
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)


class JobEvent(models.Model):
    """One step in a job's timeline: every state change, with when and why."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=12, choices=JobState.choices, blank=True)
    to_state = models.CharField(max_length=12, choices=JobState.choices)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state or '∅'} → {self.to_state}"


@dataclass(frozen=True)
class TimelineLine:
    """One line of a job's timeline as its page shows it."""

    moment: datetime
    state: str  # the state's name as people read it
    detail: str


def folded_timeline(events: Sequence[JobEvent]) -> list[TimelineLine]:
    """A job's timeline with each run of the same attempt repeated (sent, back in line, sent,
    back in line… while a provider keeps refusing) folded into one line saying how often and
    since when: the page stays short however long the wait."""
    lines = []
    index = 0
    while index < len(events):
        first, pair = events[index], events[index : index + 2]
        tries = 1
        while len(pair) == 2 and _same_steps(events[index + 2 * tries :][:2], pair):
            tries += 1
        if tries == 1:
            lines.append(TimelineLine(first.created_at, first.get_to_state_display(), first.detail))
            index += 1
            continue
        last = events[index + 2 * tries - 1]
        since = timezone.localtime(first.created_at).strftime("%H:%M")
        detail = f"{last.detail.rstrip('.')} (tried {tries} times since {since})."
        lines.append(TimelineLine(last.created_at, last.get_to_state_display(), detail))
        index += 2 * tries
    return lines


def _same_steps(steps: Sequence[JobEvent], pair: Sequence[JobEvent]) -> bool:
    return len(steps) == 2 and all(
        step.to_state == seen.to_state and step.detail == seen.detail
        for step, seen in zip(steps, pair, strict=True)
    )


class BatchNotice(models.Model):
    """The "your videos are done" email of one submission went (or was not wanted): one row per
    submission, so however many workers see its last job end, people hear of it once."""

    submission_id = models.UUIDField(unique=True)
    sent_at = models.DateTimeField(auto_now_add=True)
    succeeded = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"Batch {self.submission_id}: {self.succeeded} done, {self.failed} not"


class UploadQuerySet(models.QuerySet["Upload"]):
    def staged_by(self, *, team_id: int, user_id: int) -> "UploadQuerySet":
        """What this person uploaded to this team and has not submitted (yet), oldest first:
        it stays in their form, whatever the form was refused for, until they submit or
        remove it."""
        return self.filter(team_id=team_id, created_by_id=user_id).order_by("created_at", "id")


class Upload(models.Model):
    """A video file received and checked, waiting to be submitted as a job.

    Uploading and submitting are two steps so each file can show its own progress and be
    canceled, and a batch is then held for all at once. Submitting hands the stored original
    and poster over to the job and deletes the row; one never submitted is swept away.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="uploads")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    file = models.FileField(max_length=200)
    name = models.CharField(max_length=255)  # sanitised, for display only
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    media_info = models.JSONField(default=dict)
    poster = models.FileField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = UploadQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Upload {self.public_id} ({self.name})"

    def as_json(self) -> dict[str, Any]:
        """What the dashboard's script and the API are told of a file they uploaded."""
        return {
            "id": self.public_id,
            "name": self.name,
            "size": self.size,
            "seconds": self.media_info.get("seconds"),
            "width": self.media_info.get("width"),
            "height": self.media_info.get("height"),
        }
