"""The one interface every watermark-removal backend implements.

Jobs talk only to this interface (through `get_provider()`), so Kie can be swapped for another
backend without touching the job pipeline. Errors say what the caller should do next:
retry later, fail the job (refund), or stop submitting and alert an operator.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


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
    progress: int | None = None

    @property
    def is_final(self) -> bool:
        return self.state in (TaskState.SUCCEEDED, TaskState.FAILED)


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
    """Too many task creations: refused by the provider (429) or held back by our limiter."""


@dataclass
class TaskNotReady(RetryableError):
    """The task was just created and its record does not exist yet."""


@dataclass
class PermanentError(ProviderError):
    """The request itself cannot succeed (bad input, unknown task, generation failed)."""


@dataclass
class ProviderUnavailable(ProviderError):
    """The provider will not take work: paused, out of credits, bad key, feature disabled.

    Jobs fail fast and are refunded; operators are alerted. `kind` names the situation:
    "paused", "out_of_credits", "unauthorized", "quota", "disabled".
    """

    kind: str = "paused"


class CallbackRejected(Exception):
    """An incoming callback failed verification (bad, stale or missing signature, bad body)."""


class RemovalProvider(Protocol):
    name: str
    # What it can clean: "link" (a Sora share link) and/or "file" (an uploaded video).
    input_kinds: frozenset[str]

    def start(self, source_url: str, *, callback_url: str | None) -> str:
        """Creates a removal task for a public Sora share link and returns its task id."""
        ...

    def status(self, task_id: str) -> TaskStatus:
        """Reads a task's current state, result URLs and failure details."""
        ...

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        """Checks an incoming callback and returns the task id it is about.

        Raises CallbackRejected. The body's result is never trusted: callers re-query status().
        """
        ...

    def remaining_credits(self) -> int:
        """The provider account's remaining credits."""
        ...

    def free_create_slots(self) -> int:
        """How many tasks `start()` may create right now without being held back."""
        ...
