"""The SWC client against the SWC simulator over real sockets: the API, its two route layouts,
its quirks (lost queues, ERROR, stalls), the proxy in front, and the cleaned video itself."""

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apps.removal.swc.client import (
    NotSwc,
    ServerDown,
    SwcClient,
    SwcResult,
    SwcStatus,
    TaskVanished,
    VideoRefused,
)
from apps.simulators.swc import SwcSimConfig, SwcSimulator
from tests.clips import make_clip
from tests.swc import mark_brightness, wait_final, wait_for


@pytest.fixture
def make_swc() -> Iterator[Callable[..., SwcSimulator]]:
    started: list[SwcSimulator] = []

    def make(**config: object) -> SwcSimulator:
        config.setdefault("seconds_per_video", 0.2)
        simulator = SwcSimulator(SwcSimConfig(**config)).start()  # type: ignore[arg-type]
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., SwcClient]]:
    built: list[SwcClient] = []

    def make(simulator: SwcSimulator, **options: object) -> SwcClient:
        options.setdefault("timeout_seconds", 5.0)
        client = SwcClient(base_url=simulator.url, **options)  # type: ignore[arg-type]
        client.prefix = client.detect_prefix()
        built.append(client)
        return client

    yield make
    for client in built:
        client.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "sora.mp4", seconds=1)


def submit(client: SwcClient, path: Path) -> str:
    with path.open("rb") as video:
        return client.submit(video, size=path.stat().st_size, filename=path.name)


def test_a_clip_goes_through_and_comes_back_without_its_mark(make_swc, make_client, clip, tmp_path):
    simulator = make_swc()
    client = make_client(simulator)
    assert client.prefix == "/api/v1"

    task_id = submit(client, clip)

    assert wait_final(client, task_id) == (SwcStatus.FINISHED, 100)
    url = client.download_url(task_id)
    assert url == f"{simulator.url}/api/v1/download/{task_id}"
    response = client.http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    result = tmp_path / "result.mp4"
    result.write_bytes(response.content)
    before, after = mark_brightness(clip), mark_brightness(result)
    assert len(after) == len(before) == 12
    assert min(before) > 230  # the white mark
    assert max(after) < 120  # painted over with the background around it
    [task] = simulator.seen()["tasks"]
    assert task["upload_sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert task["filename"] == "sora.mp4"


def test_the_upload_is_streamed_in_chunks_with_its_length_declared(make_swc, make_client):
    simulator = make_swc()
    client = make_client(simulator)
    payload = bytes(range(256)) * (12 * 1024)  # 3 MiB

    class Recording(io.BytesIO):
        reads: list[int]

        def read(self, size: int | None = -1) -> bytes:
            self.reads.append(size or -1)
            return super().read(size)

    video = Recording(payload)
    video.reads = []
    task_id = client.submit(video, size=len(payload))

    assert video.reads
    assert max(video.reads) == 1024 * 1024
    task = next(t for t in simulator.seen()["tasks"] if t["task_id"] == task_id)
    assert task["upload_size"] == len(payload)
    assert task["upload_sha256"] == hashlib.sha256(payload).hexdigest()
    # Not a video: SWC's run fails, and says only ERROR.
    assert wait_final(client, task_id) == (SwcStatus.ERROR, 0)


def test_older_releases_serve_the_routes_at_the_root(make_swc, make_client, clip):
    simulator = make_swc(legacy_routes=True)
    client = make_client(simulator)
    assert client.prefix == ""

    task_id = submit(client, clip)

    assert wait_final(client, task_id).status == SwcStatus.FINISHED
    assert client.download_url(task_id) == f"{simulator.url}/download/{task_id}"
    assert client.http.get(client.download_url(task_id)).content[4:8] == b"ftyp"
    with pytest.raises(NotSwc):
        client.queue_status()  # not in older releases


def test_one_video_at_a_time_in_the_order_they_came(make_swc, make_client, clip):
    simulator = make_swc(seconds_per_video=0.3)
    client = make_client(simulator)
    tasks = [submit(client, clip) for _ in range(3)]
    seen_running: list[str] = []

    def all_done() -> bool:
        snapshot = simulator.seen()  # one consistent view of the server's tasks
        running = [
            t["task_id"]
            for t in snapshot["tasks"]
            if t["status"] == "PROCESSING" and t["percentage"] > 0
        ]
        assert len(running) <= 1
        if running and running[0] not in seen_running:
            seen_running.append(running[0])
        return all(client.result(task).status == SwcStatus.FINISHED for task in tasks)

    wait_for(all_done, what="three videos")
    assert seen_running == tasks
    assert client.queue_status()["queue_size"] == 0


def test_a_restart_loses_the_queue_tasks_vanish(make_swc, make_client, clip):
    simulator = make_swc(seconds_per_video=5)
    client = make_client(simulator)
    task_id = submit(client, clip)
    wait_for(lambda: client.result(task_id).percentage >= 10, what="the run to start")

    simulator.restart(keep_records=False)

    with pytest.raises(TaskVanished):
        client.result(task_id)
    response = client.http.get(client.download_url(task_id))
    assert (response.status_code, response.json()) == (404, {"detail": "Task does not exist."})


def test_a_restart_with_records_leaves_tasks_processing_forever(make_swc, make_client, clip):
    simulator = make_swc(seconds_per_video=30)
    client = make_client(simulator)
    running, waiting = submit(client, clip), submit(client, clip)
    wait_for(lambda: client.result(running).percentage >= 10, what="the run to start")

    simulator.restart(keep_records=True)
    simulator.configure(seconds_per_video=0.2)
    frozen = client.result(running)
    later = wait_for(lambda: submit(client, clip), what="a new task")
    wait_final(client, str(later))  # the server works again, for new tasks only

    assert client.result(running) == frozen
    assert frozen.status == SwcStatus.PROCESSING
    assert client.result(waiting) == (SwcStatus.PROCESSING, 0)


def test_a_stalled_run_freezes_the_percentage_and_the_queue(make_swc, make_client, clip):
    simulator = make_swc(seconds_per_video=0.3, stall_rate=1)
    client = make_client(simulator)
    first, second = submit(client, clip), submit(client, clip)
    wait_for(lambda: client.result(first).percentage >= 10, what="the run to start")

    def unchanged() -> SwcResult | None:
        before = client.result(first)
        time.sleep(0.3)  # the whole run should take no longer
        return before if client.result(first) == before else None

    stuck = wait_for(unchanged, what="the run to freeze")
    assert isinstance(stuck, SwcResult)
    time.sleep(0.3)
    assert client.result(first) == stuck
    assert stuck.status == SwcStatus.PROCESSING
    assert 10 <= stuck.percentage < 100
    assert client.result(second) == (SwcStatus.PROCESSING, 0)

    simulator.configure(stall_rate=0)
    simulator.restart(keep_records=False)
    with pytest.raises(TaskVanished):
        client.result(second)


def test_error_carries_no_reason_and_download_is_refused(make_swc, make_client, clip):
    simulator = make_swc(failure_rate=1)
    client = make_client(simulator)
    task_id = submit(client, clip)

    assert wait_final(client, task_id) == (SwcStatus.ERROR, 0)
    response = client.http.get(client.download_url(task_id))
    assert response.status_code == 400
    assert response.json() == {"detail": "Task not finish yet: ERROR"}


def test_a_stopped_server_is_unreachable(make_swc, make_client, clip):
    simulator = make_swc()
    client = make_client(simulator)
    simulator.stop()

    with pytest.raises(ServerDown) as raised:
        submit(client, clip)
    assert raised.value.unreachable


def test_the_reverse_proxy_in_front_wants_its_header(make_swc, make_client, clip):
    simulator = make_swc(required_authorization="Bearer pool-secret")
    with pytest.raises(NotSwc, match="Authorization"):
        make_client(simulator)

    client = make_client(simulator, authorization="Bearer pool-secret")
    task_id = submit(client, clip)
    assert wait_final(client, task_id).status == SwcStatus.FINISHED


def test_a_proxy_without_its_backend_is_a_server_down_not_a_lost_task(make_swc, make_client, clip):
    simulator = make_swc()
    client = make_client(simulator)
    task_id = submit(client, clip)
    simulator.configure(proxy_status=502)

    with pytest.raises(ServerDown) as raised:
        client.result(task_id)
    assert raised.value.code == "502"
    assert not raised.value.unreachable


def test_an_upload_without_the_video_field_is_refused(make_swc, make_client):
    simulator = make_swc()
    client = make_client(simulator)
    response = client.http.post(
        "/api/v1/submit_remove_task", files={"file": ("a.mp4", b"\x00" * 10, "video/mp4")}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "video"]
    assert simulator.seen()["tasks"] == []


def test_a_server_that_is_not_swc_is_told_apart(make_swc):
    simulator = make_swc()
    client = SwcClient(base_url=f"{simulator.url}/elsewhere", timeout_seconds=5)
    try:
        with pytest.raises(NotSwc):
            client.detect_prefix()
    finally:
        client.close()


def test_a_refused_upload_is_the_videos_fault(make_swc, make_client, clip):
    # The proxy's body-size limit answers 413 before SWC sees anything.
    simulator = make_swc(max_upload_bytes=1000)
    client = make_client(simulator)

    with pytest.raises(VideoRefused) as raised:
        submit(client, clip)

    assert raised.value.code == "413"
    assert simulator.seen()["tasks"] == []
