"""Pipeline drills with real worker clusters (`manage.py worker`), the Kie simulator over
sockets, PostgreSQL and Redis: a restart, a kill during createTask, a maintenance window, a
worker without its database, and repeated callbacks.

They run once in CI (the PostgreSQL + Redis pass; see `drill` in tests/conftest.py) and print
the figures they measure.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from apps import taskqueue
from apps.accounts.models import Membership
from apps.billing import ledger
from apps.billing.models import LedgerEntry
from apps.jobs import submission
from apps.jobs.models import Job, JobState
from apps.removal.models import ProviderAlert
from apps.simulators.kie import KieSimulator
from tests.live import TcpProxy, WorkerProcess, worker_database_url

pytestmark = [pytest.mark.drill, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 5


@dataclass
class Drill:
    simulator: KieSimulator
    membership: Membership
    start_worker: Callable[..., WorkerProcess]
    live_url: str

    def submit(self, count: int) -> list[Job]:
        links = [f"https://sora.chatgpt.com/p/s_{time.time_ns() + i:032x}" for i in range(count)]
        return submission.submit_jobs(membership=self.membership, links=links)

    def kie_tasks(self, job: Job) -> int:
        return len(self.simulator.seen(callback=job.callback_token)["tasks"])

    def requests(self, path: str) -> int:
        return sum(1 for r in self.simulator.seen()["requests"] if r["path"].endswith(path))


@pytest.fixture
def drill(
    make_simulator, settings, tmp_path: Path, alice_membership, live_server: LiveServer
) -> Iterator[Drill]:
    simulator = make_simulator(api_key=settings.KIE_SIMULATOR_API_KEY, latency=(1.0, 2.0))
    var_dir = tmp_path / "var"
    settings.KIE_SIMULATOR = True
    settings.KIE_BASE_URL = simulator.url
    settings.KIE_API_KEY = settings.KIE_SIMULATOR_API_KEY
    settings.JOB_LEASE_SECONDS = LEASE_SECONDS
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": var_dir / "media"},
        },
    }
    ledger.grant(team=alice_membership.team, credits=1000, key="drill", memo="drill")
    workers: list[WorkerProcess] = []

    def start_worker(*, callbacks: bool = True, **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            var_dir=var_dir,
            simulator_port=int(simulator.url.rsplit(":", 1)[1]),
            extra_env={
                "JOB_LEASE_SECONDS": str(LEASE_SECONDS),
                "PUBLIC_BASE_URL": live_server.url if callbacks else "",
                "PROVIDER_PROBE_SECONDS": "1",
                **env,
            },
        )
        workers.append(worker)
        return worker

    yield Drill(simulator, alice_membership, start_worker, live_server.url)
    for worker in workers:
        worker.stop()


def wait_for(condition: Callable[[], bool], *, seconds: float, what: str, worker=None) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    log = worker.output()[-4000:] if worker else ""
    pytest.fail(f"timed out after {seconds} s waiting for {what}\n{log}")


def states(jobs: list[Job]) -> dict[str, int]:
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs]).values("state")
    return {row["state"]: row["n"] for row in rows.annotate(n=Count("id"))}


def all_succeeded(jobs: list[Job]) -> bool:
    return states(jobs) == {JobState.SUCCEEDED: len(jobs)}


def assert_settled_once(jobs: list[Job]) -> None:
    for job in Job.objects.filter(pk__in=[job.pk for job in jobs]):
        kinds = sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))
        assert kinds == (
            ["capture", "hold"] if job.state == JobState.SUCCEEDED else ["hold", "release"]
        )


def test_after_a_restart_due_jobs_move_within_five_seconds(drill):
    drill.simulator.configure(latency=(12.0, 14.0))
    first = drill.start_worker(callbacks=False, Q_WORKERS="4")  # polling: checks every 2-3 s
    jobs = drill.submit(15)
    wait_for(
        lambda: Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(task_id="").count() == 15,
        seconds=30,
        what="every job to reach Kie",
        worker=first,
    )
    time.sleep(1)  # a poller runs and holds its lock

    first.kill()
    time.sleep(3)  # meanwhile checks come due, with no one to make them
    second = drill.start_worker(callbacks=False, Q_WORKERS="4")  # as in production
    running_at = second.wait_until_running()
    restart = timezone.now()
    due = dict(
        Job.objects.filter(pk__in=[j.pk for j in jobs], next_check_at__lte=restart).values_list(
            "pk", "checks"
        )
    )
    assert due, "no job was due at the restart"

    def every_due_job_moved() -> bool:
        now = dict(Job.objects.filter(pk__in=due).values_list("pk", "checks"))
        return all(now[pk] > checks for pk, checks in due.items())

    took = wait_for(every_due_job_moved, seconds=15, what="the due jobs to move", worker=second)
    print(f"\n{len(due)} due jobs moved {took:.1f} s after the restarted cluster ran "
          f"({time.monotonic() - running_at:.1f} s ago)")  # fmt: skip
    assert took <= 5
    wait_for(lambda: all_succeeded(jobs), seconds=60, what="every job to finish", worker=second)
    assert_settled_once(jobs)


def test_a_worker_killed_during_create_task_leaves_one_kie_task_per_job(drill):
    # Kie makes each task, then its answer takes 3 s: the worker dies waiting for it.
    drill.simulator.configure(create_answer_delay_seconds=3.0)
    # Sends have their own cluster, one of whose workers runs the poller: three more send at once.
    first = drill.start_worker(Q_WORKERS="4", Q_SEND_WORKERS="4")
    jobs = drill.submit(3)
    wait_for(
        lambda: len(drill.simulator.seen()["tasks"]) == 3,
        seconds=30,
        what="Kie to make every task",
        worker=first,
    )

    first.kill()
    unconfirmed = Job.objects.filter(pk__in=[j.pk for j in jobs], task_id="").count()
    assert unconfirmed == 3  # every answer was lost
    drill.simulator.configure(create_answer_delay_seconds=0.0)
    second = drill.start_worker()

    # Kie calls back when each task ends; the job adopts the task its callback names.
    wait_for(lambda: all_succeeded(jobs), seconds=90, what="every job to finish", worker=second)
    assert len(drill.simulator.seen()["tasks"]) == len(jobs)
    assert [drill.kie_tasks(job) for job in jobs] == [1] * len(jobs)
    assert_settled_once(jobs)


def test_a_maintenance_window_sends_nothing_uses_no_attempt_and_ends_on_its_own(drill):
    worker = drill.start_worker()
    drill.simulator.configure(forced_code=455)
    jobs = drill.submit(5)
    wait_for(
        lambda: ProviderAlert.objects.filter(resolved_at=None, kind="maintenance").exists(),
        seconds=30,
        what="the maintenance alert",
        worker=worker,
    )
    # Sends started in parallel before the alert existed end first (each back in line); what
    # counts is that nothing goes out after them.
    wait_for(
        lambda: states(jobs) == {JobState.QUEUED: 5},
        seconds=30,
        what="every job back in line",
        worker=worker,
    )
    sent = drill.requests("/createTask")
    time.sleep(3)  # several poller rounds and probes
    assert drill.requests("/createTask") == sent  # nothing new went out while it lasted
    assert drill.requests("/chat/credit") >= 2  # the probe asked, cheaply
    assert states(jobs) == {JobState.QUEUED: 5}
    assert not Job.objects.filter(pk__in=[j.pk for j in jobs], attempts__gt=0).exists()

    drill.simulator.configure(forced_code=0)
    wait_for(lambda: all_succeeded(jobs), seconds=60, what="every job to finish", worker=worker)
    assert set(
        Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("attempts", flat=True)
    ) == {1}
    assert not ProviderAlert.objects.filter(resolved_at=None).exists()
    assert_settled_once(jobs)


def test_a_worker_that_loses_its_database_hands_tasks_back_and_stops(drill, client: Client):
    db = connection.settings_dict
    proxy = TcpProxy((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)))
    cut_off = drill.start_worker(DATABASE_URL=worker_database_url(via_port=proxy.port))
    cut_off.wait_until_running()
    wait_for(lambda: client.get("/healthz/workers").status_code == 200, seconds=15,
             what="a healthy heartbeat", worker=cut_off)  # fmt: skip

    proxy.cut()
    wait_for(
        lambda: "unreachable" in client.get("/healthz").text,
        seconds=15,
        what="/healthz to show the database unreachable",
        worker=cut_off,
    )
    assert client.get("/healthz/workers").status_code == 503
    jobs = drill.submit(6)  # their tasks reach the broker, but this worker cannot run them
    wait_for(lambda: cut_off.process.poll() is not None, seconds=30, what="the worker to stop",
             worker=cut_off)  # fmt: skip
    assert cut_off.process.returncode != 0
    assert "database is unreachable" in cut_off.output()
    assert states(jobs) == {JobState.QUEUED: 6}

    healthy = drill.start_worker()  # the tasks it handed back are still there
    wait_for(lambda: all_succeeded(jobs), seconds=60, what="every job to finish", worker=healthy)
    assert_settled_once(jobs)


def test_a_burst_of_callbacks_for_one_task_makes_one_status_query(drill):
    worker = drill.start_worker()
    drill.simulator.configure(callback_repeats=6, latency=(1.0, 1.0))
    [job] = drill.submit(1)

    wait_for(lambda: all_succeeded([job]), seconds=30, what="the job to finish", worker=worker)
    time.sleep(1)  # any late query would show now
    seen = drill.simulator.seen(callback=job.callback_token)["tasks"]
    assert [task["callback"].split(":")[0] for task in seen] == ["sent"]
    # One recordInfo for the six callbacks (the poller's fallback is 30-45 s away).
    assert drill.requests("/recordInfo") == 1
    assert_settled_once([job])
    assert taskqueue.clusters()[0]["database"] is True
    assert Job.objects.filter(pk=job.pk, callback_at__gte=timezone.now() - timedelta(minutes=1))
