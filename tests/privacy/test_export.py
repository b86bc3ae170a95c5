"""'Download my data': a zip of JSON and CSV, opened and read back."""

import csv
import io
import json
import zipfile

import pytest
from django.urls import reverse

from apps.billing import ledger
from apps.jobs.models import Job, JobState
from apps.removal.base import InputKind
from tests.factories import confirm_email

pytestmark = pytest.mark.django_db


def make_job(team, user, *, link: str = "", file_name: str = "", state=JobState.SUCCEEDED) -> Job:
    return Job.objects.create(
        team=team,
        created_by=user,
        input_kind=InputKind.FILE if file_name else InputKind.LINK,
        source_url=link,
        original_name=file_name,
        provider="kie",
        credits=10,
        state=state,
    )


def download(client) -> zipfile.ZipFile:
    response = client.get(reverse("privacy:download_my_data"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="unmark-data-')
    assert response.streaming
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def read_csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


def test_the_zip_holds_the_profile_teams_and_jobs(login, acme, alice, carol):
    confirm_email(carol)
    link = "https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef"
    make_job(acme, carol, link=link)
    make_job(acme, carol, file_name="beach.mp4", state=JobState.FAILED)
    make_job(acme, alice, link=link)  # someone else's

    archive = download(login(carol))

    assert archive.testzip() is None
    names = set(archive.namelist())
    assert {"README.txt", "profile.json", "teams.json", "teams.csv", "jobs.csv"} <= names
    profile = json.loads(archive.read("profile.json"))
    assert profile["email"] == "carol@example.com"
    assert profile["email_addresses"] == [
        {"email": "carol@example.com", "primary": True, "confirmed": True}
    ]
    teams = {row["team"]: row["role"] for row in json.loads(archive.read("teams.json"))}
    assert teams == {"Acme": "Member", "carol's team": "Owner"}
    assert {row["team"] for row in read_csv(archive, "teams.csv")} == {"Acme", "carol's team"}
    jobs = read_csv(archive, "jobs.csv")
    assert [(j["team"], j["link"], j["file_name"], j["state"]) for j in jobs] == [
        ("Acme", link, "", "Done"),
        ("Acme", "", "beach.mp4", "Failed"),
    ]
    assert all(j["created_at"] for j in jobs)


def test_credit_history_is_included_only_for_teams_they_own(login, acme, alice, carol):
    ledger.grant(team=acme, credits=1000, key="grant:acme", memo="Staff grant")

    owner_zip = download(login(alice))
    member_zip = download(login(carol))

    acme_file = f"credits/acme-{str(acme.public_id)[:8]}.csv"
    rows = read_csv(owner_zip, acme_file)
    assert [(r["kind"], r["amount"], r["memo"]) for r in rows] == [("grant", "1000", "Staff grant")]
    assert acme_file not in member_zip.namelist()
    personal = [n for n in member_zip.namelist() if n.startswith("credits/")]
    assert len(personal) == 1  # carol's own team: its welcome credits
    assert read_csv(member_zip, personal[0])[0]["memo"] == "Welcome credits"


def test_the_export_and_the_credits_page_write_the_same_rows(login, acme, alice):
    ledger.grant(team=acme, credits=1000, key="grant:acme", memo="=HYPERLINK(evil)")
    client = login(alice)
    page_csv = client.get(reverse("billing:ledger_csv", args=[acme.public_id]))

    exported = download(client).read(f"credits/acme-{str(acme.public_id)[:8]}.csv").decode()

    assert exported == b"".join(page_csv.streaming_content).decode()
    assert exported.splitlines()[0] == "time,kind,amount,available_change,memo,video,top_up"


def test_many_jobs_stream_out_in_several_chunks(login, acme, carol):
    Job.objects.bulk_create(
        Job(
            team=acme, created_by=carol, provider="kie", credits=10, state=JobState.SUCCEEDED,
            source_url=f"https://sora.chatgpt.com/p/s_{n:032x}",
        )
        for n in range(1200)
    )  # fmt: skip

    response = login(carol).get(reverse("privacy:download_my_data"))
    chunks = [chunk for chunk in response.streaming_content if chunk]

    assert len(chunks) >= 3
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert len(read_csv(archive, "jobs.csv")) == 1200


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("privacy:download_my_data"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
