"""The one interface every watermark-removal provider implements.

The job pipeline (`apps.jobs.pipeline`) drives every provider through this interface and
nothing else, so a provider plugs in without the pipeline naming it. The removal wing knows no
jobs, credits or pages: a provider gets each task as a `TaskInput` (a link, or a way to open or
sign the stored original, and a reference naming it), and reports back with `TaskStatus`es and
the errors below, which say what the pipeline should do next.

The lifecycle of a task, as the pipeline runs it for every provider:

- **send**: `claim_starts` (how many may start now, within the provider's own limits), then
  `start` for each, which returns the task's id. Errors say: try again later (`RetryableError`,
  `RateLimited`), back in line at once through no fault of the video (`SendAgain`), maybe
  created (`NoAnswer`), never (`PermanentError`), or nothing goes to this provider until it is
  back (`ProviderUnavailable`).
- **check**: `status` → pending, running (with a percentage), succeeded (with result links),
  failed, or **lost** (the provider lost the task: it is sent again, same job, same hold).
- **a start nobody confirmed**: a provider that `calls_back` names the task in its callback,
  so the job waits to adopt it; any other is simply sent again.
- **a result gone** before it was saved: sent again if the provider `redoes_lost_results`,
  else the job fails (and is refunded).
- **cancel**: `stops_tasks` providers stop a task a person canceled.
- **forget**: the job no longer needs the task (it ended, or was sent elsewhere).
- **cost**: each `TaskStatus` that ends a task carries what it cost us, in micro-dollars.

Every call that reaches the provider (start, status, cancel, probe, remaining_credits) is timed
and its errors counted, for every provider the day it is written (`RemovalProvider`'s
`__init_subclass__`).
"""

import functools
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any, ClassVar

import httpx
from django.conf import settings
from django.db import models

from apps import telemetry


class InputKind(models.TextChoices):
    """What a person gave us to clean: a Sora share link or an exported video file."""

    LINK = "link", "Sora link"
    FILE = "file", "Uploaded file"


class TaskState(StrEnum):
    PENDING = "pending"  # accepted, waiting for capacity
    RUNNING = "running"  # being processed
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"  # the provider lost the task (a restart, a stall): send it again


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    state: TaskState
    result_urls: tuple[str, ...] = ()
    failure_code: str = ""
    # Why it failed, or what happened to a lost task, in plain words.
    failure_message: str = ""
    # A failure another try (on another of its machines) may not repeat: SWC's ERROR, which
    # gives no reason. The job is tried again up to the provider's `tries_per_video`.
    worth_another_try: bool = False
    # `failure_message` is the whole sentence people read, not a reason to quote ("No Sora
    # watermark found in this video — nothing was charged").
    failure_is_whole: bool = False
    cost_time_ms: int | None = None
    # What the task cost us, in millionths of a dollar; each provider prices its own work.
    cost_micros: int | None = None
    # The provider's own 0-100, where it gives one (SWC and Replicate do).
    progress: int | None = None
    # The callback URL the task was created with, as the provider echoes it (Kie's `param`):
    # proves that a task found by its id really belongs to the job that adopts it.
    callback_url: str = ""
    # Which of the provider's machines runs it (an SWC server), for staff.
    machine: str = ""


class InputMissing(Exception):
    """The stored original a task needs is gone (`TaskInput.open` raises it)."""


def _no_heartbeat() -> None:
    """A start that sends no news while it works."""


@dataclass(frozen=True)
class TaskInput:
    """What a provider needs to start one task, whatever kind of input it takes.

    `link` is a public link (Kie fetches it itself). For an uploaded original, `open` gives
    its bytes as a stream and its size (a provider that uploads them, like the SWC pool; raises
    `InputMissing`) and `signed_url` a short-lived link to it (a provider that fetches it, like
    Replicate); `name`, `size` and `sha256` describe it. `callback_url` is where the provider
    may report back, `None` when the app cannot be reached from outside; `reference` names the
    job to the provider. A start that takes long (an upload) calls `heartbeat` as it goes.
    """

    kind: InputKind
    reference: str
    callback_url: str | None = None
    link: str = ""
    open: Callable[[], tuple[IO[bytes], int]] | None = None
    signed_url: Callable[[int], str] | None = None
    name: str = ""
    size: int | None = None
    sha256: str = ""
    storage_name: str = ""
    heartbeat: Callable[[], None] = field(default=_no_heartbeat, compare=False)


@dataclass
class ProviderError(Exception):
    """Base of every provider failure. `code` is the provider's own code (e.g. "429")."""

    message: str
    code: str = ""
    retryable: bool = field(default=False, init=False)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


@dataclass
class RetryableError(ProviderError):
    """Worth trying again later: rate limits, maintenance, transient 5xx, timeouts.

    `retry_after` (seconds) is a hint when the provider or our own limiter knows better.
    """

    retry_after: float | None = None

    def __post_init__(self) -> None:
        self.retryable = True


@dataclass
class RateLimited(RetryableError):
    """Too many task creations: the provider refused this one (Kie's 429)."""


@dataclass
class SendAgain(RetryableError):
    """The start failed through no fault of the video and uses up no try: no room after all,
    or the machine it went to did not answer (the provider stopped using that machine). The
    job goes back in line at its place and is sent again at once."""


@dataclass
class NoAnswer(RetryableError):
    """The request went out but no answer came back: the task may exist at the provider.

    Sending again could start (and pay for) a second task, so a job whose start ends like
    this waits to adopt the task instead, where the provider `calls_back`.
    """


@dataclass
class TaskNotReady(RetryableError):
    """The task was just created and its record does not exist yet."""


@dataclass
class PermanentError(ProviderError):
    """The request itself cannot succeed (bad input, unknown task, generation failed)."""


@dataclass
class ProviderUnavailable(ProviderError):
    """The provider will not take work for now: maintenance, paused, out of credits, bad key.

    Nothing new is sent to it while this lasts (a periodic probe tells when it is back);
    waiting jobs use no attempts and go out when it is, or are refunded at their deadline.
    Operators are alerted. `kind` names the situation: "maintenance", "paused",
    "out_of_credits", "unauthorized", "quota", "disabled", "model_gone", "down".
    """

    kind: str = "paused"


class CallbackRejected(Exception):
    """An incoming callback failed verification (bad, stale or missing signature, bad body)."""


class CallbackReplayed(CallbackRejected):
    """A verified callback that was already received: a replay, or a retry of one acted on."""


@dataclass(frozen=True)
class Machine:
    """One machine of a provider that runs its own (an SWC server), as staff see it."""

    name: str
    address: str
    status: str  # "idle", "busy", "down", "removed"
    busy: int
    down_reason: str = ""


def room_within_overflow_wait(*, machines: int, busy: int, seconds_per_video: int) -> int:
    """How many more files may wait in line for `machines` that each clean one video at a time
    (`seconds_per_video` each; `busy` videos on them or just handed out) and still start within
    `SWC_OVERFLOW_WAIT_SECONDS`: the first `machines` start at once, each later one when a run
    ends. The routing policy sends the rest on to the next provider rather than have them wait
    for ours until their deadline."""
    if machines <= 0:
        return 0
    within = settings.SWC_OVERFLOW_WAIT_SECONDS * machines // seconds_per_video
    return max(0, within + machines - busy)


# The calls that reach the provider: timed, and their errors counted.
MEASURED = ("start", "status", "cancel", "probe", "remaining_credits")


def _measured(operation: str, call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def measured(self: "RemovalProvider", *args: Any, **kwargs: Any) -> Any:
        with telemetry.provider_call(self.name, operation):
            return call(self, *args, **kwargs)

    return measured


class RemovalProvider:
    """A removal provider: what every one has, with the defaults most of them keep."""

    name: ClassVar[str]
    label: ClassVar[str]  # how people know it: "Kie"
    # How customers are told who cleaned their video, after "Cleaned " ("by Kie.ai", "on
    # Replicate", "by our GPU servers"): kept with each job it takes (`Job.cleaned_by`), so a
    # page never works it out again from today's configuration. Never a machine's name.
    cleaned_by: ClassVar[str] = ""
    # What removed the watermark, as a result's Content Credentials name it.
    software_agent: ClassVar[str] = ""
    # What a video it accepted but has not started waits for, after "Waiting for "
    # ("a free cleaning server"): customers' words, like `cleaned_by`.
    waits_for: ClassVar[str] = "its turn"
    # The inputs this provider can clean: the dispatcher never hands it anything else.
    accepts: frozenset[InputKind] = frozenset()

    # --- How its tasks are followed ---------------------------------------------------------
    # Whether its callbacks name their task, so a start that got no answer is adopted when
    # the callback comes (rather than sent again, which could pay for two).
    calls_back: ClassVar[bool] = False
    # Callbacks about one task within this many seconds make one status query (0: each does).
    callback_window_seconds: ClassVar[float] = 0
    # The answer its callbacks expect once received (Kie asks for its own envelope).
    callback_received: ClassVar[dict[str, object]] = {"received": True}
    # Its tasks are checked this often (its own machines answer quickly), rather than on the
    # back-off schedule; the dispatcher keeps running while it has tasks.
    poll_seconds: ClassVar[float | None] = None
    # A result that vanished before it was saved is cleaned again (else the job fails).
    redoes_lost_results: ClassVar[bool] = False
    # Whether it can stop a task it already runs (`cancel`): a person may then cancel a job
    # that went out, and it is not run (and billed) to the end.
    stops_tasks: ClassVar[bool] = False
    # A video that failed with `worth_another_try` is tried this many times in all.
    tries_per_video: ClassVar[int] = 1
    # Whether it is paid in advance from an account whose balance staff watch.
    keeps_a_balance: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for operation in MEASURED:
            if operation in cls.__dict__:
                setattr(cls, operation, _measured(operation, cls.__dict__[operation]))

    @property
    def max_sends(self) -> int:
        """Sends of one video (each lost, or refused as busy) before the job fails."""
        return int(settings.MAX_SEND_ATTEMPTS)

    # --- The lifecycle ---------------------------------------------------------------------
    def start(self, task: TaskInput) -> str:
        """Creates a removal task and returns its task id."""
        raise NotImplementedError

    def status(self, task_id: str) -> TaskStatus:
        """Reads a task's current state, result URLs, cost and failure details."""
        raise NotImplementedError

    def cancel(self, task_id: str) -> None:
        """Asks the provider to stop the task (`stops_tasks` providers only)."""
        raise PermanentError(f"{self.label} cannot stop a task it has started.")

    def forget(self, task_id: str) -> None:
        """The job no longer needs this task (it ended, or is sent again): anything kept for
        it (a place on a machine, a temporary file) can go. Called inside the job's move."""

    def result_client(self, task_id: str) -> httpx.Client | None:
        """A client trusted to fetch this task's result from where the operator configured
        the provider (a private address), or None: results are then fetched as any link."""
        return None

    def open_result(self, task_id: str) -> IO[bytes] | None:
        """The result itself, for a provider that keeps it in the app's own storage (ours):
        the save step reads it from there instead of downloading its link. None otherwise."""
        return None

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        """Checks an incoming callback and returns the task id it is about.

        Raises CallbackRejected. The body's result is never trusted: callers re-query status().
        """
        raise CallbackRejected(f"{self.label} never calls back")

    # --- Capacity --------------------------------------------------------------------------
    def claim_starts(self, wanted: int, *, in_hand: int = 0) -> tuple[int, float]:
        """How many of `wanted` new tasks may start now, counting them as started, and the
        claim's time (for `starting`). `in_hand` is how many the dispatcher handed out for it
        that have not started yet.

        Only the dispatcher calls this, before it hands jobs to workers, so a provider's limit
        (Kie's 20 creates per 10 s, an SWC server's free places) shapes the schedule instead of
        refusing sends afterwards.
        """
        return wanted, time.time()

    def starting(self, claimed_at: float) -> None:
        """A start claimed at `claimed_at` goes out now (called just before `start`)."""

    def seconds_until_start(self, *, in_hand: int = 0) -> float:
        """How long until `claim_starts` can grant one more (0 when it can now)."""
        return 0.0

    def starts_per_second(self) -> float:
        """The sustained rate at which this provider takes new tasks (admission control)."""
        raise NotImplementedError

    def may_wait(self, *, sent_now: int) -> int:
        """How many more jobs may wait in line for it rather than go to the next provider of
        the policy (beyond the `sent_now` going out). Most keep every one they are first
        choice for; a pool of machines keeps those it would start soon enough."""
        return sys.maxsize

    def probe(self) -> None:
        """A cheap call that raises ProviderUnavailable while the provider takes no work."""

    def remaining_credits(self) -> int:
        """The provider account's remaining credits; ProviderError when it has no balance."""
        raise ProviderError(f"{self.label} has no credit balance to read.")

    def credit_line(self) -> str:
        """What customers read after "Cleaned " for a video it takes."""
        return self.cleaned_by or f"by {self.label}"

    def tasks_ahead(self, task_id: str) -> int | None:
        """How many of its tasks will run before this one, which it accepted but has not
        started (a place in an SWC server's queue); None when it does not say."""
        return None

    def describe_machine(self, machine: str) -> str:
        """Which of its machines ran a task, as staff see it (the admin): its name and its
        address. Customers are never shown this."""
        return machine

    def probe_machines(self) -> float | None:
        """Asks those of its own machines that are down and due a probe whether they are back
        (the dispatcher calls it every round, work or not); returns the seconds until the next
        probe is due, or None when none of its machines is down."""
        return None

    def machines(self) -> list[Machine]:
        """Its own machines (an SWC pool's servers), for staff; none for a hosted service."""
        return []

    def close(self) -> None:
        """Releases pooled connections."""
