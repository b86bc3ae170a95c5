"""The Kie simulator seen from the outside, with a plain HTTP client: what Kie would answer."""

import hashlib
import json
import time
import tracemalloc

import httpx
import pytest

from apps.simulators.kie import KieSimulator, SimulatorConfig
from tests.stack import SIM_KEY, SORA_LINK, link_task, wait_until_final

AUTH = {"Authorization": f"Bearer {SIM_KEY}"}


def create(simulator: KieSimulator, body: object, headers: dict[str, str] = AUTH) -> dict:
    response = httpx.post(f"{simulator.url}/api/v1/jobs/createTask", json=body, headers=headers)
    assert response.status_code == 200  # Kie puts the outcome in the envelope
    return response.json()


def valid_request(**changes: object) -> dict:
    return {"model": "sora-watermark-remover", "input": {"video_url": SORA_LINK}, **changes}


@pytest.mark.parametrize(
    ("headers", "label"),
    [
        ({}, "missing"),
        ({"Authorization": "Bearer wrong"}, "wrong"),
        ({"Authorization": SIM_KEY}, "no scheme"),
    ],
)
def test_a_missing_or_wrong_bearer_key_is_refused(simulator, headers, label):
    answer = create(simulator, valid_request(), headers=headers)

    assert answer["code"] == 401, label
    assert simulator.seen()["tasks"] == []


@pytest.mark.parametrize(
    ("body", "msg"),
    [
        ({"input": {"video_url": SORA_LINK}}, "model is required"),
        (valid_request(model="sora-2"), "model 'sora-2' is not supported"),
        ({"model": "sora-watermark-remover"}, "input.video_url is required"),
        (valid_request(input={"video_url": ""}), "input.video_url is required"),
        (
            valid_request(input={"video_url": "https://example.com/p/s_1"}),
            "input.video_url must be a link that starts with sora.chatgpt.com",
        ),
        (
            valid_request(input={"video_url": SORA_LINK + "?psh=" + "x" * 450}),
            "input.video_url must be at most 500 characters",
        ),
        (
            valid_request(input={"video_url": SORA_LINK, "upload_method": "ftp"}),
            "input.upload_method must be s3 or oss",
        ),
        (valid_request(callBackUrl="ftp://x"), "callBackUrl must be an http(s) URL"),
    ],
)
def test_invalid_creates_get_kies_validation_error(simulator, body, msg):
    answer = create(simulator, body)

    assert answer["code"] == 422
    assert answer["msg"].startswith(msg)
    assert answer["data"] is None


def test_a_link_without_the_scheme_is_accepted_as_kie_does(simulator):
    answer = create(
        simulator, valid_request(input={"video_url": SORA_LINK.removeprefix("https://")})
    )

    assert answer["code"] == 200


def test_record_queries_need_a_known_task_id(simulator):
    missing = httpx.get(f"{simulator.url}/api/v1/jobs/recordInfo", headers=AUTH).json()
    unknown = httpx.get(
        f"{simulator.url}/api/v1/jobs/recordInfo", params={"taskId": "nope"}, headers=AUTH
    ).json()

    assert (missing["code"], missing["msg"]) == (400, "taskId parameter is required")
    assert (unknown["code"], unknown["msg"]) == (404, "Task not found")


def test_a_finished_record_has_the_documented_fields(simulator, kie):
    task_id = kie.start(link_task(SORA_LINK, callback_url=None))
    wait_until_final(kie, task_id)

    record = httpx.get(
        f"{simulator.url}/api/v1/jobs/recordInfo", params={"taskId": task_id}, headers=AUTH
    ).json()["data"]

    assert record["taskId"] == task_id
    assert record["model"] == "sora-watermark-remover"
    assert record["state"] == "success"
    assert json.loads(record["param"])["input"]["video_url"] == SORA_LINK
    assert json.loads(record["resultJson"])["resultUrls"] == [
        f"{simulator.url}/results/{task_id}.mp4"
    ]
    assert (record["failCode"], record["failMsg"]) == ("", "")
    assert record["createTime"] <= record["completeTime"] == record["updateTime"]


def test_a_result_is_not_served_before_the_task_succeeds(make_simulator, make_kie, clock):
    simulator = make_simulator(latency=(5, 5), clock=clock)
    task_id = make_kie(simulator).start(link_task(SORA_LINK, callback_url=None))

    response = httpx.get(f"{simulator.url}/results/{task_id}.mp4")

    assert response.status_code == 404


def test_result_bytes_are_streamed_without_being_held_in_memory(make_simulator, make_kie):
    size = 24 * 1024 * 1024
    simulator = make_simulator(result_bytes=size)
    kie = make_kie(simulator)
    url = wait_until_final(kie, kie.start(link_task(SORA_LINK, callback_url=None))).result_urls[0]
    digest = hashlib.sha256()

    tracemalloc.start()
    try:
        with httpx.stream("GET", url) as response:
            content_type = response.headers["Content-Type"]
            declared = int(response.headers["Content-Length"])
            for chunk in response.iter_bytes():
                digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert content_type == "video/mp4"
    assert declared == size
    assert peak < 4 * 1024 * 1024  # the server and this client together, for 24 MiB
    assert simulator.seen()["tasks"][0]["resultFetches"] == 1


@pytest.mark.parametrize(
    ("fault", "status", "content_type"),
    [("missing", 404, "text/plain"), ("html", 200, "text/html; charset=utf-8")],
)
def test_result_faults_serve_what_a_broken_link_would(simulator, kie, fault, status, content_type):
    url = wait_until_final(kie, kie.start(link_task(SORA_LINK, callback_url=None))).result_urls[0]
    control = httpx.post(f"{simulator.url}/__sim__/config", json={"result_fault": fault})

    response = httpx.get(url)

    assert control.json()["result_fault"] == fault
    assert response.status_code == status
    assert response.headers["Content-Type"] == content_type


def test_behaviour_changes_at_run_time_through_the_control_endpoint(simulator):
    control = httpx.post(
        f"{simulator.url}/__sim__/config",
        json={"paused": True, "latency": [0.1, 0.2], "failure_rate": 1},
    )

    answer = create(simulator, valid_request())

    assert control.status_code == 200
    assert control.json()["latency"] == [0.1, 0.2]
    assert "api_key" not in control.json()
    assert (answer["code"], answer["msg"]) == (500, "This interface is temporarily paused")


@pytest.mark.parametrize(
    "change",
    [{"api_key": "mine"}, {"failure_rate": 2}, {"paused": "yes"}, {"nonsense": 1}, [1]],
)
def test_the_control_endpoint_refuses_bad_changes(simulator, change):
    response = httpx.post(f"{simulator.url}/__sim__/config", json=change)

    assert response.status_code == 400
    assert response.json()["error"]
    assert simulator.config.failure_rate == 0
    assert not simulator.config.paused


def test_the_tasks_page_lists_what_the_simulator_saw(simulator, kie):
    task_id = kie.start(link_task(SORA_LINK, callback_url=None))

    seen = httpx.get(f"{simulator.url}/__sim__/tasks").json()

    assert [task["taskId"] for task in seen["tasks"]] == [task_id]
    assert seen["requests"] == [{"method": "POST", "path": "/api/v1/jobs/createTask", "code": 200}]


def test_a_callback_that_cannot_be_delivered_is_recorded_not_fatal(simulator, kie):
    task_id = kie.start(link_task(SORA_LINK, callback_url="http://127.0.0.1:9/unreachable"))
    wait_until_final(kie, task_id)

    deadline = time.monotonic() + 10
    while not (outcome := simulator.seen()["tasks"][0]["callback"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert outcome.startswith("failed: ConnectError")
    assert kie.remaining_credits() > 0  # still answering


def test_the_simulator_listens_on_loopback_only():
    with pytest.raises(ValueError, match="loopback only"):
        KieSimulator(SimulatorConfig(api_key=SIM_KEY), host="0.0.0.0")  # noqa: S104 (must be refused)


def test_nonsense_settings_are_refused():
    with pytest.raises(ValueError, match="latency must be MIN MAX"):
        SimulatorConfig(api_key=SIM_KEY, latency=(3, 1))
