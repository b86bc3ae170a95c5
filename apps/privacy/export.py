""" "Download my data": one zip of JSON and CSV files, streamed as it is written.

The zip is never held whole in memory or on disk: `zipfile` writes each entry into a small
buffer that the response drains after every few rows (an unseekable stream makes `zipfile`
describe each entry after its data, which every unzip tool reads).
"""

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from datetime import datetime

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import Membership, Role, User
from apps.billing import history_csv
from apps.jobs.models import Job

ROWS_PER_CHUNK = 500

JOB_COLUMNS = [
    "video_id", "team", "input", "link", "file_name", "state", "credits",
    "created_at", "finished_at", "failure",
]  # fmt: skip

README = """Your Unmark data, exported {when}.

profile.json      your account: email addresses, name, dates, two-factor methods
teams.json/.csv   the teams you belong to and your role in each
jobs.csv          every video you sent: its link or file name, state, credits and dates
credits/*.csv     the full credit history of each team you own (one file per team), in the
                  columns of the credits page's "Download history (CSV)"

Times are in UTC (ISO 8601). Credits: 10 credits = one video.
"""


class _Drain(io.RawIOBase):
    """A write-only stream whose bytes are taken out by the response as they arrive."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def profile(user: User) -> dict[str, object]:
    return {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "date_joined": _when(user.date_joined),
        "last_login": _when(user.last_login),
        "email_addresses": [
            {"email": a.email, "primary": a.primary, "confirmed": a.verified}
            for a in EmailAddress.objects.filter(user=user).order_by("-primary", "email")
        ],
        "two_factor": [
            {
                "type": a.get_type_display(),
                "added_at": _when(a.created_at),
                "last_used_at": _when(a.last_used_at),
            }
            for a in Authenticator.objects.filter(user=user).order_by("created_at")
        ],
    }


def teams(user: User) -> list[dict[str, object]]:
    memberships = Membership.objects.active().filter(user=user).select_related("team")
    return [
        {
            "team": m.team.name,
            "team_id": str(m.team.public_id),
            "role": m.get_role_display(),
            "personal_team": m.team.is_personal,
            "joined_at": _when(m.created_at),
            "monthly_credit_limit": m.monthly_credit_limit,
        }
        for m in memberships.order_by("created_at", "id")
    ]


def job_rows(user: User) -> Iterator[list[object]]:
    jobs = Job.objects.filter(created_by=user).select_related("team").order_by("created_at", "id")
    for job in jobs.iterator(chunk_size=ROWS_PER_CHUNK):
        yield [
            job.public_id, job.team.name, job.get_input_kind_display(), job.source_url,
            job.original_name, job.get_state_display(), job.credits, _when(job.created_at),
            _when(job.finished_at), job.failure_message,
        ]  # fmt: skip


def stream_export(user: User) -> Iterator[bytes]:
    """The zip's bytes, a chunk at a time."""
    drain = _Drain()
    with zipfile.ZipFile(drain, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", README.format(when=timezone.now().isoformat()))
        archive.writestr("profile.json", json.dumps(profile(user), indent=2))
        team_list = teams(user)
        archive.writestr("teams.json", json.dumps(team_list, indent=2))
        yield drain.take()
        yield from _csv_entry(
            archive, drain, "teams.csv", list(team_list[0]) if team_list else ["team"],
            ([row[k] for k in row] for row in team_list),
        )  # fmt: skip
        yield from _csv_entry(archive, drain, "jobs.csv", JOB_COLUMNS, job_rows(user))
        owned = Membership.objects.active().filter(user=user, role=Role.OWNER)
        for membership in owned.select_related("team").order_by("team__name", "id"):
            team = membership.team
            name = f"credits/{slugify(team.name) or 'team'}-{str(team.public_id)[:8]}.csv"
            yield from _csv_entry(
                archive, drain, name, history_csv.COLUMNS, history_csv.rows(team.pk)
            )
    yield drain.take()


def _csv_entry(
    archive: zipfile.ZipFile,
    drain: _Drain,
    name: str,
    header: list[str],
    rows: Iterable[list[object]],
) -> Iterator[bytes]:
    with archive.open(name, mode="w") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        for n, row in enumerate(rows, start=1):
            writer.writerow(row)
            if n % ROWS_PER_CHUNK == 0:
                text.flush()
                yield drain.take()
        text.flush()
        text.detach()  # leaves closing the entry to `archive.open`
    yield drain.take()
