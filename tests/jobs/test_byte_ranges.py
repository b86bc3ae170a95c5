"""Stored videos served from local disk answer byte ranges, as S3 does: a player can seek, and
the before and after can be kept in step."""

import pytest
from django.urls import reverse

from tests.stack import VIDEO, finished_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def preview(media_storage, login, alice):
    job = finished_job(alice.memberships.get(team__is_personal=True))
    client = login(alice)
    url = reverse("jobs:preview", args=[job.team.public_id, job.public_id])
    return lambda **headers: client.get(url, headers=headers)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_whole_video_says_it_takes_ranges(preview):
    response = preview()

    assert response.status_code == 200
    assert response["Accept-Ranges"] == "bytes"
    assert body(response) == VIDEO


def test_a_range_gets_just_those_bytes(preview):
    response = preview(Range="bytes=100-199")

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-199/{len(VIDEO)}"
    assert response["Content-Length"] == "100"
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Disposition"].startswith("inline")
    assert body(response) == VIDEO[100:200]


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [("bytes=1000-", 1000, None), ("bytes=-24", -24, None), ("bytes=0-999999", 0, None)],
)
def test_open_ended_and_oversized_ranges_end_at_the_last_byte(preview, asked, first, last):
    response = preview(Range=asked)

    assert response.status_code == 206
    assert body(response) == VIDEO[first:last]
    start = first % len(VIDEO)
    assert response["Content-Range"] == f"bytes {start}-{len(VIDEO) - 1}/{len(VIDEO)}"


def test_a_range_past_the_end_is_refused_with_the_size(preview):
    response = preview(Range=f"bytes={len(VIDEO)}-")

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(VIDEO)}"


def test_several_ranges_get_the_whole_video(preview):
    response = preview(Range="bytes=0-1,5-6")

    assert response.status_code == 200
    assert body(response) == VIDEO
