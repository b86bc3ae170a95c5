"""Pool drills: file jobs through real SWC simulators over sockets while servers are killed,
restarted, stalled or failing. Every drill ends with each job settled exactly once and
`reconcile` clean."""

import hashlib
import time
from collections import Counter
from datetime import timedelta
from typing import IO, Any

import boto3
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from moto import mock_aws
from storages.backends.s3 import S3File

from apps.billing import ledger
from apps.jobs import dispatcher, pipeline
from apps.jobs.models import Job, JobState
from apps.removal import routing
from apps.removal.base import InputKind
from apps.removal.models import PoolTask, ProviderAlert, SwcServer
from apps.removal.registry import NoProvider, configured_for, get_provider
from apps.removal.swc import pool as swc_pool
from apps.removal.swc.client import SwcClient
from tests.clips import make_clip
from tests.live import WorkerProcess, free_port
from tests.swc import (
    STALL_SECONDS,
    Pool,
    details,
    file_jobs,
    mark_brightness,
    run_until,
    settled_once,
    wait_for,
)
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def test_files_spread_over_the_pool_and_come_back_clean(
    pool, clip, alice_membership, drive, tmp_path
):
    first, second = pool.start({}, {})
    jobs = file_jobs(alice_membership, clip, count=5)

    drive(jobs)

    servers = set()
    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED, details(job)
        assert job.provider_progress == 100
        servers.add(job.provider_server)
        stored = tmp_path / f"{job.pk}.mp4"
        with default_storage.open(str(job.result_file.name), "rb") as result:
            stored.write_bytes(result.read())
        assert max(mark_brightness(stored)) < 120  # the mark is painted over
        assert job.result_size == stored.stat().st_size
    assert servers == {first.url, second.url}
    for simulator in (first, second):
        seen = simulator.seen()
        assert seen["peak_open"] <= 2  # SWC_MAX_IN_FLIGHT
        assert all(task["downloads"] == 1 for task in seen["tasks"])
    assert sum(len(s.seen()["tasks"]) for s in (first, second)) == 5  # each sent once
    settled_once(*jobs)


def test_a_server_killed_mid_video_loses_it_to_another_and_is_probed_back(
    pool, clip, alice_membership, step, drive, login
):
    slow, quick = pool.start({"seconds_per_video": 30}, {})
    [job] = file_jobs(alice_membership, clip)
    run_until(
        step,
        lambda: Job.objects.filter(pk=job.pk, state=JobState.PROCESSING).exists(),
        "the video to run",
    )
    job.refresh_from_db()
    assert job.provider_server == slow.url
    assert job.provider_progress is not None
    assert 10 <= job.provider_progress < 100
    page = login(alice_membership.user).get(job.get_absolute_url())
    assert f"Removing the watermark — {job.provider_progress} %" in page.content.decode()  # live

    slow.stop()  # the GPU machine dies mid-video
    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.provider_server == quick.url
    assert "The cleaning server went away and lost this video; sending it again." in details(job)
    assert not pool.server(0).healthy
    assert "not answering" in pool.server(0).down_reason
    settled_once(job)

    pool.restart(0, seconds_per_video=0.2)
    assert pool.probe_now() == 1
    assert pool.server(0).healthy


def test_a_restart_that_forgets_its_tasks_sends_them_again(
    pool, clip, alice_membership, step, drive
):
    restarting, _ = pool.start({"seconds_per_video": 30}, {})
    [job] = file_jobs(alice_membership, clip)
    run_until(step, lambda: Job.objects.get(pk=job.pk).task_id != "", "the upload")

    restarting.restart(keep_records=False)
    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.provider_server != restarting.url  # it avoids the server that lost it
    assert job.attempts == 2
    assert "The cleaning server restarted and lost this video; sending it again." in details(job)
    assert pool.server(0).healthy  # it answers; it just forgot
    settled_once(job)


def test_an_upload_answered_after_its_job_was_sent_again_holds_no_place(
    pool, clip, alice_membership, drive, settings, monkeypatch
):
    """The upload outlives the job's lease (a loaded machine): the dispatcher takes the send
    for unconfirmed and puts the job back in line, then the server answers. Nobody will ever
    follow that task, so its place on the server frees at once. (In the soak two such late
    answers held half of a server's places to the end.)"""
    pool.start({})
    [job] = file_jobs(alice_membership, clip)
    submit = SwcClient.submit

    def answered_late(self: SwcClient, video: IO[bytes], **kwargs: Any) -> str:
        pipeline.recover_unconfirmed(Job.objects.get(pk=job.pk))
        return submit(self, video, **kwargs)

    monkeypatch.setattr(SwcClient, "submit", answered_late)
    pipeline.send_job(Job.objects.get(pk=job.pk))

    job.refresh_from_db()
    assert (job.state, job.task_id) == (JobState.QUEUED, "")
    [late] = PoolTask.objects.filter(reference=str(job.public_id))
    assert late.task_id != ""
    assert late.outcome == PoolTask.Outcome.FORGOTTEN
    assert swc_pool.free_slots() == settings.SWC_MAX_IN_FLIGHT

    monkeypatch.undo()
    drive([job])
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, details(job)
    settled_once(job)


def test_tasks_stuck_processing_after_a_restart_are_sent_again(
    pool, clip, alice_membership, step, drive
):
    restarting, _ = pool.start({"seconds_per_video": 30}, {})
    [job] = file_jobs(alice_membership, clip)
    run_until(
        step,
        lambda: Job.objects.filter(pk=job.pk, state=JobState.PROCESSING).exists(),
        "the video to run",
    )

    restarting.restart(keep_records=True)  # its records say PROCESSING, forever
    drive([job])

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert "The cleaning server stopped making progress; sending it again." in details(job)
    assert "no progress" in pool.server(0).down_reason
    settled_once(job)


def test_a_stalled_server_gives_up_its_running_and_waiting_videos(
    pool, clip, alice_membership, step, drive
):
    # Long enough that the run is still going once the mark is painted (which is slow on a
    # busy machine): a run that ends before its stall point simply finishes.
    [stalled] = pool.start({"stall_rate": 1, "seconds_per_video": 4})
    jobs = file_jobs(alice_membership, clip, count=2)
    run_until(
        step,
        lambda: Job.objects.exclude(task_id="").count() == 2,
        "both videos to reach the server",
    )
    [_, healthy] = pool.start({"seconds_per_video": 0.3})  # a second server joins the pool

    drive(jobs)

    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED
        assert job.provider_server == healthy.url
        # Both left the stalled server (the running one and the one waiting behind it).
        assert job.attempts >= 2
        assert "The cleaning server stopped making progress; sending it again." in details(job)
    assert not pool.server(0).healthy
    assert "no progress" in pool.server(0).down_reason
    assert len(stalled.seen()["tasks"]) == 2
    settled_once(*jobs)


def test_a_video_waiting_behind_a_long_run_is_not_taken_for_stalled(
    pool, clip, alice_membership, drive
):
    pool.start({"seconds_per_video": 2 * STALL_SECONDS})
    jobs = file_jobs(alice_membership, clip, count=2)

    drive(jobs)

    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED
        assert job.attempts == 1
    assert pool.server(0).healthy
    settled_once(*jobs)


def test_an_error_is_tried_on_another_server_then_the_job_fails_and_is_refunded(
    pool, clip, alice_membership, drive
):
    _, fine = pool.start({"failure_rate": 1}, {})
    [rescued] = file_jobs(alice_membership, clip)
    drive([rescued])
    rescued.refresh_from_db()
    assert rescued.state == JobState.SUCCEEDED
    assert rescued.provider_server == fine.url
    assert rescued.provider_errors == 1

    fine.configure(failure_rate=1)
    [doomed] = file_jobs(alice_membership, clip)
    drive([doomed])
    doomed.refresh_from_db()
    assert doomed.state == JobState.FAILED
    assert doomed.failure_code == "swc_error"
    assert doomed.failure_message == (
        "Our cleaning servers could not remove the watermark (2 tries): they gave no reason "
        "(SWC reports only ERROR). Nothing was charged."
    )
    assert pool.server(0).healthy  # a failing video says nothing about the server
    settled_once(rescued, doomed)


def test_with_every_server_down_videos_wait_then_go_when_one_is_back(
    pool, clip, alice_membership, step, drive
):
    pool.start({}, {})
    for simulator in pool.simulators:
        simulator.stop()
    jobs = file_jobs(alice_membership, clip, count=2)
    run_until(step, lambda: not SwcServer.objects.filter(healthy=True).exists(), "both down")
    for _ in range(5):
        step()
    assert set(Job.objects.values_list("state", flat=True)) == {JobState.QUEUED}
    assert swc_pool.free_slots() == 0
    [alert] = ProviderAlert.objects.filter(provider="swc", resolved_at=None)
    assert alert.message == "No cleaning server is answering."  # users see the banner

    pool.restart(1)
    assert pool.probe_now() == 1
    assert not ProviderAlert.objects.filter(provider="swc", resolved_at=None).exists()
    drive(jobs)

    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED
        assert job.provider_server == pool.simulators[1].url
        assert job.attempts == 1  # a send that never reached a server does not count
    settled_once(*jobs)


def test_videos_waiting_on_a_dead_pool_are_refunded_at_their_deadline(
    pool, clip, alice_membership, step, settings
):
    pool.start({})
    pool.simulators[0].stop()
    jobs = file_jobs(alice_membership, clip, count=2)
    run_until(step, lambda: not pool.server(0).healthy, "the server to be marked down")

    Job.objects.update(created_at=timezone.now() - timedelta(hours=2))
    step()

    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.FAILED
        assert job.failure_code == "timeout"
        assert "Nothing was charged" in job.failure_message
    settled_once(*jobs)


@pytest.mark.postgres
def test_workers_booking_at_once_never_overfill_a_server(settings, alice_membership, tmp_path):
    """Twelve workers book twelve queued jobs at the same moment on three servers that take
    two each: the row locks let exactly six through, two per server."""
    settings.SWC_SERVERS = [
        {"url": f"http://10.0.0.{n}:5344", "authorization": ""} for n in (1, 2, 3)
    ]
    ledger.grant(team=alice_membership.team, credits=1000, key="race", memo="race")
    clip = make_clip(tmp_path / "clip.mp4")
    jobs = file_jobs(alice_membership, clip, count=12)

    booked = run_at_once(12, lambda index: swc_pool.book_server(str(jobs[index].public_id)))

    servers = [task.server.url for task in booked if isinstance(task, PoolTask)]
    assert len(servers) == 6, booked
    assert sorted(Counter(servers).values()) == [2, 2, 2]
    assert PoolTask.objects.count() == 6
    assert swc_pool.free_slots() == 0


def test_the_dispatcher_hands_out_no_more_files_than_places_however_slow_the_workers_are(
    settings, alice_membership, tmp_path, run_tasks
):
    """Two servers with two places each and twelve files waiting: rounds of the dispatcher
    that run before any worker has picked up its sends hand out four, not four a round."""

    settings.SWC_SERVERS = [{"url": f"http://10.0.0.{n}:5344", "authorization": ""} for n in (1, 2)]
    settings.SWC_MAX_IN_FLIGHT = 2
    settings.FILE_PROVIDERS = ["swc"]
    ledger.grant(team=alice_membership.team, credits=1000, key="slow", memo="slow workers")
    file_jobs(alice_membership, make_clip(tmp_path / "clip.mp4"), count=12)
    run_tasks.purge()  # the poller enqueued on commit: this test runs the rounds itself

    handed = [dispatcher.poll_due_jobs(run_seconds=0) for _ in range(3)]

    assert handed == [4, 0, 0]
    assert run_tasks.queue_size() == 4  # one send per place, nothing sent twice
    assert swc_pool.free_slots() == 4  # nothing booked yet: the places are held by the sends
    assert dispatcher._in_hand(timezone.now()) == {"swc": 4}
    assert get_provider("swc").claim_starts(4, in_hand=4)[0] == 0


def test_files_go_to_the_pool_then_our_remover_then_replicate_else_no_provider_takes_them(
    settings,
):
    def first(kind: InputKind) -> str:
        return configured_for(kind)[0].name

    settings.REPLICATE_API_TOKEN = "r8_token"
    settings.SWC_SERVERS = [{"url": "http://10.0.0.9:5344", "authorization": ""}]
    assert first(InputKind.FILE) == "swc"
    assert first(InputKind.LINK) == "kie"
    assert get_provider("kie").accepts == {InputKind.LINK}

    settings.SWC_SERVERS = []
    assert first(InputKind.FILE) == "local"  # Unmark's own remover, on the workers' CPU

    settings.REMOVER_PROCESSES = 0
    assert first(InputKind.FILE) == "replicate"  # the elastic capacity

    settings.REPLICATE_API_TOKEN = ""
    assert configured_for(InputKind.FILE) == []
    with pytest.raises(NoProvider, match="No removal provider takes uploaded files"):
        routing.accepting(InputKind.FILE)


def test_a_real_worker_cluster_rides_out_a_server_killed_mid_video(
    settings, tmp_path, clip, alice_membership
):
    var_dir = tmp_path / "var"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": var_dir / "media"},
        },
    }
    ledger.grant(team=alice_membership.team, credits=1000, key="cluster", memo="drill")
    pool = Pool(settings)
    slow, quick = pool.start({"seconds_per_video": 30}, {"seconds_per_video": 0.3})
    worker = WorkerProcess(
        var_dir=var_dir,
        simulator_port=free_port(),
        extra_env={"SWC_SERVERS": f"{slow.url},{quick.url}"},
    )
    try:
        jobs = file_jobs(alice_membership, clip, count=3)
        wait_for(
            lambda: Job.objects.filter(provider_server=slow.url, state=JobState.PROCESSING),
            seconds=60,
            what=f"a video running on the slow server; worker log:\n{worker.output()[-2000:]}",
        )
        slow.stop()
        wait_for(
            lambda: not Job.objects.in_flight().exists(),
            seconds=90,
            what=f"every job to end; worker log:\n{worker.output()[-2000:]}",
        )
    finally:
        worker.stop()
        pool.stop()

    for job in jobs:
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED
        assert job.provider_server == quick.url
    assert Job.objects.filter(attempts=2).count() == 2  # both videos the slow server held
    settled_once(*jobs)


def test_originals_in_s3_stream_to_the_server_without_a_whole_file_buffer(
    pool, clip, alice_membership, drive, settings, monkeypatch
):
    def buffered(self: S3File) -> object:
        raise AssertionError("S3File buffers the whole object: stream the GET instead")

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="unmark-originals")
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": "unmark-originals",
                    "region_name": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                    "file_overwrite": False,
                },
            },
        }
        [server] = pool.start({})
        [job] = file_jobs(alice_membership, clip)
        monkeypatch.setattr(S3File, "_get_file", buffered)

        drive([job])

        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED
        [task] = server.seen()["tasks"]
        assert task["upload_sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
        result = s3.get_object(Bucket="unmark-originals", Key=job.result_file.name)["Body"].read()
        assert len(result) == job.result_size
    settled_once(job)


# --- Finding a server back while all is quiet ----------------------------------------------------
def test_a_server_down_for_stalling_is_probed_back_by_the_minute_sweep_with_no_work_at_all(pool):
    stalled, _ = pool.start({}, {})
    swc_pool.servers()  # the rows, as the pool makes them on first sight
    swc_pool.mark_down(pool.server(0), "a task made no progress for 31 s")
    # Its probe comes due; nobody uploads anything.
    SwcServer.objects.filter(url=stalled.url).update(next_probe_at=timezone.now())
    assert not Job.objects.exists()

    dispatcher.sweep()

    server = pool.server(0)
    assert server.healthy
    assert server.down_reason == ""


def test_the_poller_stays_for_a_probe_due_in_a_moment_and_then_stops(pool):
    pool.start({}, {})
    swc_pool.servers()
    swc_pool.mark_down(pool.server(0), "a task made no progress for 31 s")
    SwcServer.objects.filter(pk=pool.server(0).pk).update(
        next_probe_at=timezone.now() + timedelta(seconds=1)
    )
    started = time.monotonic()

    dispatcher.poll_due_jobs(run_seconds=8)

    assert pool.server(0).healthy
    # It stopped once nothing was left to wait for, not at the end of its run.
    assert time.monotonic() - started < 6


def test_a_server_still_down_is_asked_less_and_less_often_up_to_once_a_minute(pool):
    pool.start({})
    swc_pool.servers()
    pool.simulators[0].stop()  # gone for good
    swc_pool.mark_down(pool.server(0), "connection refused")
    gaps = []
    for _ in range(8):
        asked_at = timezone.now()
        pool.probe_now()
        server = pool.server(0)
        assert not server.healthy
        # Reckoned from the probe, which ends within a second of when it was asked.
        gaps.append(int((server.next_probe_at - asked_at).total_seconds()))

    assert gaps[:5] == [4, 8, 16, 32, 60]
    assert gaps[5:] == [60, 60, 60]
