"""The Replicate simulator answers as Replicate does for what the official `replicate` Python
client asks: `models.get` (every field its `Model` and `Version` require), a prediction whose
`version` is `owner/name:<id>`, and `predictions.list` (pages of `next` / `previous` /
`results`, the cursors whole URLs the client GETs as they are).

The client itself is not a dependency: `ClientModel`, `ClientVersion`, `ClientPrediction` and
`ClientPage` below declare the fields its pydantic models declare (replicate-python's
`model.py`, `version.py`, `prediction.py`, `pagination.py`), and the requests are the ones its
namespaces send, over real sockets."""

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel

from apps.simulators.replicate import ReplicateSimulator
from apps.simulators.replicate.config import MODEL, VERSION
from tests.replicate import SIM_TOKEN

UNREACHABLE_INPUT = "http://127.0.0.1:9/clip.mp4"  # the prediction fails at once: listing only


class ClientVersion(BaseModel):
    id: str
    created_at: datetime
    cog_version: str
    openapi_schema: dict[str, Any]


class ClientPrediction(BaseModel):
    id: str
    model: str
    version: str
    status: Literal["starting", "processing", "succeeded", "failed", "canceled"]
    input: dict[str, Any] | None = None
    output: Any | None = None
    logs: str | None = None
    error: str | None = None
    metrics: dict[str, Any] | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    urls: dict[str, str] | None = None


class ClientModel(BaseModel):
    url: str
    owner: str
    name: str
    description: str | None = None
    visibility: Literal["public", "private"]
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    run_count: int
    cover_image_url: str | None = None
    default_example: ClientPrediction | None = None
    latest_version: ClientVersion | None = None


class ClientPage(BaseModel):
    previous: str | None = None
    next: str | None = None
    results: list[ClientPrediction]


@pytest.fixture
def api(replicate_simulator: ReplicateSimulator) -> Iterator[httpx.Client]:
    """An HTTP client set up as the official one builds its own: base URL and bearer token."""
    with httpx.Client(
        base_url=replicate_simulator.url, headers={"Authorization": f"Bearer {SIM_TOKEN}"}
    ) as client:
        yield client


def create(api: httpx.Client, version: str = VERSION) -> httpx.Response:
    # `predictions.create(version=…, input=…)` posts the version string as it is given.
    return api.post(
        "/v1/predictions", json={"version": version, "input": {"video": UNREACHABLE_INPUT}}
    )


# --- models.get ---------------------------------------------------------------------------------
def test_models_get_answers_every_field_the_official_client_reads(api):
    create(api)
    create(api)

    response = api.get(f"/v1/models/{MODEL}")

    assert response.status_code == 200
    model = ClientModel.model_validate(response.json())
    assert model.url == f"https://replicate.com/{MODEL}"
    assert f"{model.owner}/{model.name}" == MODEL
    assert model.run_count == 2
    assert model.latest_version is not None
    assert model.latest_version.id == VERSION
    assert model.latest_version.created_at.tzinfo is not None
    assert model.latest_version.cog_version
    inputs = model.latest_version.openapi_schema["components"]["schemas"]["Input"]
    assert inputs["required"] == ["video"]
    assert inputs["properties"]["video"]["format"] == "uri"


def test_the_version_is_answered_on_its_own_and_in_the_models_list(api):
    one = api.get(f"/v1/models/{MODEL}/versions/{VERSION}")
    listed = api.get(f"/v1/models/{MODEL}/versions")
    unknown = api.get(f"/v1/models/{MODEL}/versions/{'0' * 64}")

    assert ClientVersion.model_validate(one.json()).id == VERSION
    assert [v["id"] for v in listed.json()["results"]] == [VERSION]
    assert unknown.status_code == 404


# --- The version a prediction names ---------------------------------------------------------------
def test_a_version_named_owner_slash_name_colon_id_runs_like_the_bare_id(api):
    response = create(api, f"{MODEL}:{VERSION}")

    assert response.status_code == 201
    prediction = ClientPrediction.model_validate(response.json())
    assert (prediction.model, prediction.version) == (MODEL, VERSION)


@pytest.mark.parametrize(
    "version",
    [f"someone/else:{VERSION}", f"{MODEL}:{'0' * 64}", MODEL, "0" * 64],
    ids=["another model", "another version", "no version", "unknown id"],
)
def test_a_version_that_is_not_this_models_is_not_found(api, version):
    response = create(api, version)

    assert response.status_code == 404
    assert response.json()["detail"] == "The requested version could not be found."


# --- predictions.list ---------------------------------------------------------------------------
def test_predictions_are_listed_newest_first_a_page_at_a_time(api, replicate_simulator):
    replicate_simulator.configure(page_size=2)
    made = [create(api).json()["id"] for _ in range(5)]
    newest_first = made[::-1]

    first = ClientPage.model_validate(api.get("/v1/predictions").json())
    # The client GETs `next` as it is: a whole URL.
    assert first.next is not None
    assert first.next.startswith(f"{replicate_simulator.url}/v1/predictions?cursor=")
    second = ClientPage.model_validate(api.get(first.next).json())
    assert second.next is not None
    third = ClientPage.model_validate(api.get(second.next).json())
    assert second.previous is not None
    back = ClientPage.model_validate(api.get(second.previous).json())

    assert [p.id for p in first.results] == newest_first[:2]
    assert first.previous is None
    assert [p.id for p in second.results] == newest_first[2:4]
    assert [p.id for p in third.results] == newest_first[4:]
    assert third.next is None
    assert [p.id for p in back.results] == newest_first[:2]
    assert all(p.urls and p.urls["get"].endswith(p.id) for p in first.results)


def test_predictions_made_meanwhile_do_not_shift_the_next_page(api, replicate_simulator):
    replicate_simulator.configure(page_size=2)
    made = [create(api).json()["id"] for _ in range(4)]
    first = api.get("/v1/predictions").json()

    create(api)  # a new one arrives on top while the client pages on
    second = api.get(first["next"]).json()

    assert [p["id"] for p in second["results"]] == [made[1], made[0]]


def test_predictions_can_be_listed_by_when_they_were_made(api):
    made = [create(api).json() for _ in range(3)]
    since = made[1]["created_at"]

    newer = api.get("/v1/predictions", params={"created_after": since}).json()
    older = api.get("/v1/predictions", params={"created_before": since}).json()

    assert [p["id"] for p in newer["results"]] == [made[2]["id"], made[1]["id"]]
    assert [p["id"] for p in older["results"]] == [made[0]["id"]]


def test_a_bad_cursor_or_date_is_a_clear_400(api):
    cursor = api.get("/v1/predictions", params={"cursor": "not-a-cursor"})
    date = api.get("/v1/predictions", params={"created_after": "yesterday"})

    assert cursor.status_code == 400
    assert cursor.json()["detail"] == "The cursor is not valid."
    assert date.status_code == 400
    assert "ISO 8601" in date.json()["detail"]


def test_listing_needs_the_token_like_everything_else(replicate_simulator):
    response = httpx.get(f"{replicate_simulator.url}/v1/predictions")

    assert response.status_code == 401


# --- instances --------------------------------------------------------------------------------
def status_of(api: httpx.Client, prediction_id: str) -> ClientPrediction:
    return ClientPrediction.model_validate(api.get(f"/v1/predictions/{prediction_id}").json())


def test_predictions_beyond_the_models_instances_wait_in_starting(api, replicate_simulator):
    replicate_simulator.configure(instances=1, processing_seconds=1.0)
    first, second = (create(api).json()["id"] for _ in range(2))

    deadline = time.monotonic() + 10
    while status_of(api, first).status == "starting" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status_of(api, first).status == "processing"
    assert status_of(api, second).status == "starting"  # its instance is busy

    while status_of(api, second).status in {"starting", "processing"}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ran, waited = status_of(api, first), status_of(api, second)
    assert (ran.status, waited.status) == ("failed", "failed")  # its input is unreachable
    assert waited.started_at is not None
    assert ran.completed_at is not None
    assert waited.started_at >= ran.completed_at
