"""Every provider call, timed and its errors counted, in one place: `get_provider` hands out
providers wrapped in `Metered`, so a new provider is measured the day it is registered.

Only the calls that go to the provider (start, status, probe, remaining_credits, cancel) are
measured; the rest (limits, callbacks, closing) stay local and pass straight through. What only
some providers can do is kept: a provider that stops tasks is wrapped in `MeteredStopper`, so
`isinstance(provider, StopsTasks)` answers for the provider itself (a protocol check looks at
the class, not at `__getattr__`).
"""

from collections.abc import Mapping
from typing import Any

from apps import telemetry
from apps.jobs.models import InputKind
from apps.jobs.providers.base import RemovalProvider, StopsTasks, TaskInput, TaskStatus


class Metered:
    def __init__(self, provider: RemovalProvider) -> None:
        self.wrapped = provider
        self.name: str = provider.name
        self.label: str = provider.label
        self.accepts: frozenset[InputKind] = provider.accepts

    def start(self, task: TaskInput) -> str:
        with telemetry.provider_call(self.name, "start"):
            return self.wrapped.start(task)

    def status(self, task_id: str) -> TaskStatus:
        with telemetry.provider_call(self.name, "status"):
            return self.wrapped.status(task_id)

    def probe(self) -> None:
        with telemetry.provider_call(self.name, "probe"):
            self.wrapped.probe()

    def remaining_credits(self) -> int:
        with telemetry.provider_call(self.name, "remaining_credits"):
            return self.wrapped.remaining_credits()

    def __getattr__(self, name: str) -> Any:
        # What only this provider has (Replicate's webhook secret) passes straight through.
        return getattr(self.wrapped, name)

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        return self.wrapped.verify_callback(headers, body)

    def claim_starts(self, wanted: int) -> tuple[int, float]:
        return self.wrapped.claim_starts(wanted)

    def starting(self, claimed_at: float) -> None:
        self.wrapped.starting(claimed_at)

    def seconds_until_start(self) -> float:
        return self.wrapped.seconds_until_start()

    def starts_per_second(self) -> float:
        return self.wrapped.starts_per_second()

    def close(self) -> None:
        self.wrapped.close()


class MeteredStopper(Metered):
    def __init__(self, provider: StopsTasks) -> None:
        super().__init__(provider)  # type: ignore[arg-type]  # a provider that also stops tasks
        self.stopper = provider

    def cancel(self, task_id: str) -> None:
        with telemetry.provider_call(self.name, "cancel"):
            self.stopper.cancel(task_id)


def metered(provider: RemovalProvider) -> Metered:
    return MeteredStopper(provider) if isinstance(provider, StopsTasks) else Metered(provider)
