"""How the Replicate simulator behaves: its settings (changed while it runs through
`/__sim__/config`)."""

import dataclasses
from dataclasses import dataclass
from typing import Any

MODEL = "uglyrobot/sora2-watermark-remover"
# The version whose input schema the client was written against (input `video`, a file URL).
VERSION = "7b636d39f482f129dfa3429fdc7c5c2d4f4ef36e4cbc6d919b701c1d39162797"
# When that version was pushed, and with which Cog, as `models.get` reports them.
VERSION_CREATED_AT = "2025-10-14T09:21:37.384213Z"
COG_VERSION = "0.16.8"


@dataclass
class ReplicateSimConfig:
    api_token: str
    # The account's signing secret (`whsec_` + base64); one is made up when empty.
    webhook_secret: str = ""
    model: str = MODEL
    version: str = VERSION
    # Seconds in `starting` before the model runs: a cold start boots the model first.
    cold_start_seconds: float = 0.0
    # Predictions processed at once (the model's instances); more wait in `starting`.
    instances: int = 8
    # Least time in `processing` (painting the mark out takes what it takes on top).
    processing_seconds: float = 0.5
    failure_rate: float = 0.0  # share of predictions that end `failed`
    rate_limit: int = 600  # creates per minute; more are answered 429
    model_gone: bool = False  # the model was deleted or made private: 404 for it
    webhook_repeats: int = 1  # send each webhook this many times (Replicate may retry)
    # A model version that loses the sound: outputs come without the input's audio.
    drops_sound: bool = False
    # Predictions per page of `GET /v1/predictions` (Replicate gives 100).
    page_size: int = 100

    def __post_init__(self) -> None:
        problems = [
            (not self.api_token, "api_token must not be empty"),
            (self.cold_start_seconds < 0, "cold_start_seconds must not be negative"),
            (self.processing_seconds < 0, "processing_seconds must not be negative"),
            (self.instances < 1, "instances must be at least 1"),
            (not 0 <= self.failure_rate <= 1, "failure_rate must be between 0 and 1"),
            (self.rate_limit < 1, "rate_limit must be at least 1"),
            (self.webhook_repeats < 1, "webhook_repeats must be at least 1"),
            (self.page_size < 1, "page_size must be at least 1"),
            (self.model.count("/") != 1, "model must be owner/name"),
        ]
        errors = [message for failed, message in problems if failed]
        if errors:
            raise ValueError("; ".join(errors))

    def public(self) -> dict[str, Any]:
        """The settings a test or an operator may read back; secrets left out."""
        values = dataclasses.asdict(self)
        del values["api_token"], values["webhook_secret"]
        return values
