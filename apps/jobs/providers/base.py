"""The one interface every watermark-removal backend implements.

Jobs talk only to this interface (through `get_provider(name)`), so backends plug in without
touching the job pipeline. A provider says which inputs it accepts (`InputKind`s) and gets each
task as a `TaskInput`: a link, or a way to open or sign the stored original. Errors say what
the caller should do next: retry later, fail the job (refund), or hold all new work and alert
an operator until the provider is back.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

from apps.jobs.models import InputKind
from apps.jobs.uploads import original_link

if TYPE_CHECKING:
    from apps.jobs.models import Job


class TaskState(StrEnum):
    PENDING = "pending"  # accepted, waiting for capacity
    RUNNING = "running"  # being processed
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    state: TaskState
    result_urls: tuple[str, ...] = ()
    failure_code: str = ""
    failure_message: str = ""
    cost_time_ms: int | None = None
    # What the task cost us, in millionths of a dollar; each provider prices its own work.
    cost_micros: int | None = None
    # The provider's own 0-100, where it gives one (SWC and Replicate do).
    progress: int | None = None
    # The callback URL the task was created with, as the provider echoes it (Kie's `param`):
    # proves that a task found by its id really belongs to the job that adopts it.
    callback_url: str = ""


@dataclass(frozen=True)
class TaskInput:
    """What a provider needs to start one task, whatever kind of input it takes.

    `link` is a public link (Kie fetches it itself). For an uploaded original, `open` gives
    its bytes as a stream (a provider that uploads them, like the SWC pool) and `signed_url`
    a short-lived link to it (a provider that fetches it, like Replicate); `name`, `size` and
    `sha256` describe it. `callback_url` is where the provider may report back, `None` when
    the app cannot be reached from outside; `reference` names the job to the provider.
    """

    kind: InputKind
    reference: str
    callback_url: str | None = None
    link: str = ""
    open: Callable[[], IO[bytes]] | None = None
    signed_url: Callable[[int], str] | None = None
    name: str = ""
    size: int | None = None
    sha256: str = ""

    @classmethod
    def for_job(cls, job: "Job") -> "TaskInput":
        if job.input_kind == InputKind.LINK:
            return cls(
                kind=InputKind.LINK,
                reference=str(job.public_id),
                callback_url=job.callback_url,
                link=job.source_url,
            )
        original = job.original_file
        return cls(
            kind=InputKind.FILE,
            reference=str(job.public_id),
            callback_url=job.callback_url,
            open=lambda: original.open("rb"),
            signed_url=lambda seconds: original_link(job, seconds=seconds),
            name=job.original_name,
            size=job.original_size,
            sha256=job.original_sha256,
        )


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
class NoAnswer(RetryableError):
    """The request went out but no answer came back: the task may exist at the provider.

    Sending again could start (and pay for) a second task, so a job whose start ends like
    this waits to adopt the task instead (see `pipeline.send_job`).
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
    "out_of_credits", "unauthorized", "quota", "disabled", "model_gone".
    """

    kind: str = "paused"


class CallbackRejected(Exception):
    """An incoming callback failed verification (bad, stale or missing signature, bad body)."""


class RemovalProvider(Protocol):
    name: str
    label: str  # how people know it: "Kie"
    # The inputs this provider can clean: the dispatcher never hands it anything else.
    accepts: frozenset[InputKind]

    def start(self, task: TaskInput) -> str:
        """Creates a removal task and returns its task id."""
        ...

    def status(self, task_id: str) -> TaskStatus:
        """Reads a task's current state, result URLs and failure details."""
        ...

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        """Checks an incoming callback and returns the task id it is about.

        Raises CallbackRejected. The body's result is never trusted: callers re-query status().
        """
        ...

    def claim_starts(self, wanted: int) -> tuple[int, float]:
        """How many of `wanted` new tasks may start now, counting them as started, and the
        claim's time (for `starting`).

        Only the dispatcher calls this, before it hands jobs to workers, so a provider's limit
        (Kie's 20 creates per 10 s, an SWC server's free slots) shapes the schedule instead of
        refusing sends afterwards.
        """
        ...

    def starting(self, claimed_at: float) -> None:
        """A start claimed at `claimed_at` goes out now (called just before `start`)."""
        ...

    def seconds_until_start(self) -> float:
        """How long until `claim_starts` can grant one more (0 when it can now)."""
        ...

    def starts_per_second(self) -> float:
        """The sustained rate at which this provider takes new tasks (admission control)."""
        ...

    def probe(self) -> None:
        """A cheap call that raises ProviderUnavailable while the provider takes no work."""
        ...

    def remaining_credits(self) -> int:
        """The provider account's remaining credits."""
        ...

    def close(self) -> None:
        """Releases pooled connections."""
        ...


@runtime_checkable
class StopsTasks(Protocol):
    """A provider that can stop a task it is running (Replicate): when a person cancels a job
    that already went out, its task is stopped instead of run (and billed) to the end. Others
    (Kie, the SWC pool) cannot, and their sent jobs cannot be canceled."""

    def cancel(self, task_id: str) -> None:
        """Asks the provider to stop the task. Raises ProviderError if the request fails."""
        ...
