"""What the removal wing remembers, shared by every worker machine: why a provider takes no
work (alerts), staff's on/off switch per provider, and the SWC pool's servers and the tasks
booked on them. Nothing here knows jobs: a pool task names its job only by a reference."""

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ProviderAlert(models.Model):
    """The provider takes no work (maintenance, paused, out of credits, bad key): nothing new
    is sent to it, and users and staff are told.

    One open alert per provider and kind; it closes when a probe, or a task, finds the
    provider back.
    """

    provider = models.CharField(max_length=20)
    kind = models.CharField(max_length=20)
    message = models.CharField(max_length=300)
    occurrences = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-last_seen_at"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["provider", "kind"],
                condition=Q(resolved_at__isnull=True),
                name="provideralert_one_open_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind}: {self.message}"

    @property
    def advice(self) -> str:
        """What it means for their videos."""
        minutes = settings.JOB_GIVE_UP_SECONDS // 60
        return (
            "Your videos wait and go out when it is back. Any not sent within "
            f"{minutes} minutes are refunded: nothing is charged for them."
        )


class ProviderSwitch(models.Model):
    """Staff's on/off switch for one provider, flipped at run time from the admin with a reason.

    A provider without a row is on. While it is off the router sends it nothing new: its jobs
    that have not started go to the next provider of the policy, the ones it is already
    running are followed there to the end.
    """

    provider = models.CharField(max_length=20, unique=True)
    enabled = models.BooleanField(default=True)
    reason = models.CharField(max_length=300)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering: ClassVar[list[str]] = ["provider"]
        verbose_name = "provider switch"
        verbose_name_plural = "provider switches"

    def __str__(self) -> str:
        return f"{self.provider} {'on' if self.enabled else 'off'}"


class SwcServer(models.Model):
    """One SoraWatermarkCleaner server of the pool, as every worker machine sees it.

    The list of servers is configuration (`SWC_SERVERS`); this row is their shared state:
    whether a server is up, why it went down, when to probe it again, and which route layout it
    has. How many jobs it holds is never stored: it is counted from the jobs themselves, under a
    lock on these rows, so it cannot drift when a worker dies.
    """

    url = models.CharField(max_length=200, unique=True)
    # Where its routes are: "/api/v1" (current releases) or "" (the root, older ones), and
    # None until detected — "" is a real answer here, hence the null.
    api_prefix = models.CharField(max_length=20, null=True, blank=True)  # noqa: DJ001
    healthy = models.BooleanField(default=True)
    down_reason = models.CharField(max_length=300, blank=True)
    down_since = models.DateTimeField(null=True, blank=True)
    # Times it went down, or was found still down, since it last finished a video: each
    # makes the next probe come later.
    failures = models.PositiveIntegerField(default=0)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    # When it was last given a job: among equally loaded servers, the one waiting longest wins.
    booked_at = models.DateTimeField(null=True, blank=True)
    finished_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering: ClassVar[list[str]] = ["id"]
        verbose_name = "SWC server"

    def __str__(self) -> str:
        return f"{self.url} ({'up' if self.healthy else 'down'})"


class PoolTask(models.Model):
    """One video booked on a server of the SWC pool, and how it moves there.

    The pool's own record of where each task runs: a server's load is the number of its open
    tasks, counted while the server rows are locked (see `swc.pool`), so two workers never
    overfill a server. An upload whose worker died stops holding its place once it has been
    quiet for a lease; a task ends when the server finishes it, fails it or loses it, or when
    its job no longer needs it.
    """

    class Outcome(models.TextChoices):
        FINISHED = "finished"
        ERROR = "error"  # the server answered ERROR (SWC never says why)
        LOST = "lost"  # the server restarted, went away, stalled or left the pool
        NOT_SENT = "not_sent"  # the upload itself failed
        FORGOTTEN = "forgotten"  # its job ended, or went elsewhere, first

    # The job it was sent for (its public id): a task lost on one server is sent elsewhere.
    reference = models.CharField(max_length=64, db_index=True)
    server = models.ForeignKey(SwcServer, on_delete=models.CASCADE, related_name="tasks")
    # SWC's own id, once the upload is answered.
    task_id = models.CharField(max_length=100, blank=True)
    booked_at = models.DateTimeField(default=timezone.now)
    # Renewed while the upload goes on: a worker that dies mid-upload frees the place.
    alive_at = models.DateTimeField(default=timezone.now)
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    # When the percentage last moved (or the task reached the front of its server's queue): a
    # task quiet for `SWC_STALL_SECONDS` while it should be running has stalled.
    progress_changed_at = models.DateTimeField(null=True, blank=True)
    # When the server was first seen working on it: its GPU time runs from here.
    running_since = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    # What happened to a lost task, in plain words (its job's timeline says it).
    lost_reason = models.CharField(max_length=300, blank=True)
    gpu_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["server", "ended_at"], name="pooltask_server_open"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["task_id"], condition=~Q(task_id=""), name="pooltask_one_per_swc_task"
            )
        ]

    def __str__(self) -> str:
        return f"{self.task_id or 'upload'} on {self.server.url} ({self.outcome or 'open'})"


class LocalTask(models.Model):
    """One video cleaned by Unmark's own remover (`apps.removal.local`), and how its run goes.

    A worker runs it (`tasks.run_removal`) in a process of its own; any worker can follow it
    here: its progress (frames done), whether its run is still alive, and what came of it.
    """

    class State(models.TextChoices):
        WAITING = "waiting"  # created; its run has not started yet
        RUNNING = "running"
        DONE = "done"  # the clean video is in storage, at `result_name`
        NO_MARK = "no_mark"  # no Sora watermark in the video: nothing to remove
        FAILED = "failed"
        CANCELED = "canceled"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The job it was sent for (its public id), and where its original lies in storage.
    reference = models.CharField(max_length=64, db_index=True)
    input_name = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Renewed by its run as it goes: a run silent for longer than a lease has died.
    alive_at = models.DateTimeField(default=timezone.now)
    # The machine its run is on, and its process: for staff, and for stopping it.
    host = models.CharField(max_length=100, blank=True)
    frames_done = models.PositiveIntegerField(default=0)
    frames_total = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    result_name = models.CharField(max_length=200, blank=True)
    # CPU time its removal process used (what it costs us) and what it found.
    cpu_ms = models.PositiveIntegerField(null=True, blank=True)
    report = models.JSONField(default=dict, blank=True)
    failure = models.CharField(max_length=300, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["state", "host"], name="localtask_state_host"),
        ]

    def __str__(self) -> str:
        return f"Removal {self.public_id} ({self.state})"

    @property
    def progress(self) -> int:
        return 100 * self.frames_done // self.frames_total if self.frames_total else 0
