"""How the Kie simulator behaves: its settings (changed while it runs through `/__sim__/config`)."""

import dataclasses
from dataclasses import dataclass
from typing import Any

from apps.simulators.kie.contract import CODE_MESSAGES

API_FAULTS = ("", "malformed", "html")
RESULT_FAULTS = ("", "missing", "html")


@dataclass
class SimulatorConfig:
    """How the simulator behaves. `credits` is its live balance: each success costs 10."""

    api_key: str
    latency: tuple[float, float] = (1.0, 3.0)
    failure_rate: float = 0.0
    null_record_seconds: float = 0.0
    rate_limit: int = 20
    paused: bool = False
    credits: int = 10_000_000
    hmac_key: str = ""
    result_bytes: int = 0  # 0 serves the sample MP4 that ships with the project
    # Streams generated results at most this fast (0: as fast as possible): a slow download
    # gives a fault drill time to kill the worker in the middle of it.
    result_bytes_per_second: int = 0
    api_delay_seconds: float = 0.0  # wait before every API answer
    # Make the task, then wait this long before answering createTask: a client that gives up
    # (or dies) meanwhile leaves a task it never heard of, as with a lost answer from Kie.
    create_answer_delay_seconds: float = 0.0
    callback_repeats: int = 1  # send each callback this many times at once (Kie may repeat)
    api_fault: str = ""  # "malformed": broken JSON with HTTP 200; "html": a proxy's 502 page
    forced_code: int = 0  # answer every authorised API call with this envelope code
    forced_msg: str = ""
    result_fault: str = ""  # "missing": result links 404; "html": they serve a web page

    def __post_init__(self) -> None:
        low, high = self.latency
        problems = [
            (not self.api_key, "api_key must not be empty"),
            (not 0 <= low <= high, "latency must be MIN MAX with 0 <= MIN <= MAX"),
            (not 0 <= self.failure_rate <= 1, "failure_rate must be between 0 and 1"),
            (self.null_record_seconds < 0, "null_record_seconds must not be negative"),
            (self.rate_limit < 1, "rate_limit must be at least 1"),
            (self.callback_repeats < 1, "callback_repeats must be at least 1"),
            (self.credits < 0, "credits must not be negative"),
            (self.result_bytes < 0, "result_bytes must not be negative"),
            (self.result_bytes_per_second < 0, "result_bytes_per_second must not be negative"),
            (self.api_delay_seconds < 0, "api_delay_seconds must not be negative"),
            (
                self.create_answer_delay_seconds < 0,
                "create_answer_delay_seconds must not be negative",
            ),
            (self.api_fault not in API_FAULTS, f"api_fault must be one of {API_FAULTS}"),
            (
                self.result_fault not in RESULT_FAULTS,
                f"result_fault must be one of {RESULT_FAULTS}",
            ),
            (self.forced_code not in (0, *CODE_MESSAGES), "forced_code must be 0 or a Kie code"),
        ]
        errors = [message for failed, message in problems if failed]
        if errors:
            raise ValueError("; ".join(errors))

    def public(self) -> dict[str, Any]:
        """The settings a test or an operator may read back; secrets left out."""
        values = dataclasses.asdict(self)
        del values["api_key"], values["hmac_key"]
        return values
