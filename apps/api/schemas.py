"""What the API reads and writes, as its OpenAPI schema shows it."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from django.conf import settings
from ninja import Field, Schema

# JobState's values, spelled out for the schema (a test checks they stay the same).
State = Literal[
    "queued", "submitted", "processing", "downloading", "succeeded", "failed", "canceled", "expired"
]


class ItemNote(Schema):
    item: str = Field(description="Which item of the request, e.g. `links[2]` or `files[0]`.")
    message: str


class ProblemOut(Schema):
    """An error, as RFC 9457 `application/problem+json`. `type` names the kind of error and
    never changes; `detail` says what happened in plain words."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[ItemNote] | None = Field(
        None, description="Per-item errors: nothing was created when there are any."
    )


class JobsIn(Schema):
    links: list[str] = Field(
        default_factory=list,
        max_length=settings.MAX_LINKS_PER_SUBMIT,
        description="Sora share links (`https://sora.chatgpt.com/p/s_…`).",
    )
    uploads: list[UUID] = Field(
        default_factory=list,
        max_length=settings.UPLOAD_MAX_FILES,
        description="Ids of files uploaded with `POST /uploads` and not yet submitted.",
    )
    again: bool = Field(
        False,
        description="Process videos this team already cleaned (and still keeps), or is "
        "cleaning now, again, and pay for them; by default they are set aside and their "
        "earlier job is named.",
    )


class Credits(Schema):
    reserved: int
    charged: int
    refunded: int


class Failure(Schema):
    code: str
    message: str


class Result(Schema):
    url: str = Field(description="A signed download link, valid for a few minutes.")
    url_expires_at: datetime
    filename: str
    size: int | None
    sha256: str
    deleted_at: datetime | None = Field(description="When the stored result is deleted.")


class ContentCredentials(Schema):
    """What the result's Content Credentials (a signed C2PA manifest inside the MP4) say."""

    signed_by: str = Field(description="The organisation whose certificate signed them.")
    edited_by: str = Field(description="The product that made the claim: Unmark/<version>.")
    ai_generated: bool = Field(
        description="They still declare the video AI-made (IPTC trainedAlgorithmicMedia)."
    )
    watermark_removed: bool = Field(
        description="They record the edit: c2pa.edited, visible watermark removed."
    )
    original_had_credentials: bool = Field(
        description="The original carried its own credentials, kept inside as the parent."
    )
    trusted: bool = Field(
        description="The signer chains to a trust anchor the app was given (false for the "
        "local, untrusted test signer)."
    )


class TimelineStep(Schema):
    at: datetime
    from_state: State | None
    to_state: State
    detail: str


class JobOut(Schema):
    id: UUID
    state: State
    stage: str = Field(
        description="The state in plain words, as the dashboard shows it (`Waiting` also for "
        "a `submitted` job its provider accepted but has not started)."
    )
    progress: int = Field(ge=0, le=100)
    progress_is_estimate: bool
    input: Literal["link", "file"]
    link: str | None
    file_name: str | None
    provider: str | None = Field(
        description="The removal service that took the job (`swc`: our GPU servers, "
        "`replicate`, `kie`); null while it waits in line, before one has taken it, and for a "
        "job that ended before any did."
    )
    created_by: str | None = Field(
        description="Email of the person who made it; for a key's jobs, the key's maker."
    )
    credits: Credits
    failure: Failure | None
    retry_of: UUID | None
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    has_result: bool
    content_credentials: ContentCredentials | None = Field(
        description="Present once a result has been signed (every result while signing is on)."
    )


class JobDetailOut(JobOut):
    result: Result | None
    timeline: list[TimelineStep]


class AlreadyCleanedOut(Schema):
    item: str
    job: UUID = Field(
        description="The earlier job whose result this team still keeps, or that is "
        "cleaning the same video now."
    )
    upload: UUID | None = Field(
        description="For a file: its upload, kept to send again with `again` if wanted."
    )


class CreatedOut(Schema):
    jobs: list[JobOut]
    already_cleaned: list[AlreadyCleanedOut] = Field(
        description="Set aside, not charged: send them with `again` to process them anyway."
    )
    duplicates: list[ItemNote] = Field(description="Repeated items: each video is sent once.")


class JobPage(Schema):
    data: list[JobOut]
    next_cursor: str | None


class BalanceOut(Schema):
    available: int = Field(description="Credits new jobs may hold (balance minus reserved).")
    reserved: int = Field(description="Credits held by unfinished jobs.")
    balance: int
    frozen: bool
    credits_per_video: int


class CreditEntry(Schema):
    created_at: datetime
    kind: Literal["grant", "topup", "hold", "capture", "release", "clawback", "adjustment"]
    amount: int = Field(description="Signed credits, as the ledger records them.")
    available_change: int
    memo: str
    job: UUID | None
    top_up: UUID | None


class CreditPage(Schema):
    data: list[CreditEntry]
    next_cursor: str | None


class UploadTicketOut(Schema):
    method: Literal["POST"]
    url: str = Field(description="Where to POST the file (multipart/form-data).")
    fields: dict[str, str] = Field(description="Form fields to send before the file.")
    file_field: str = Field(description="The form field that carries the file.")
    confirm_url: str | None = Field(
        description="After a direct upload to storage, POST `{ticket, name}` here to get the "
        "upload's id. Empty when the upload answers with it itself."
    )
    ticket: str
    expires_in: int


class ConfirmIn(Schema):
    ticket: str = Field(max_length=500)
    name: str = Field("", max_length=255)


class UploadOut(Schema):
    id: UUID
    name: str
    size: int
    seconds: float | None
    width: int | None
    height: int | None
