"""The pool of SoraWatermarkCleaner servers that cleans uploaded files, and an SWC job's steps.

Each SWC server runs one video at a time and knows nothing of the others, so the pool is ours
to run. Its state lives in the database, shared by every worker machine:

- **Booking**: a queued job goes to the least-loaded healthy server with room (at most
  `SWC_MAX_IN_FLIGHT` jobs each, so the next upload overlaps the current run). The load is
  counted from the jobs themselves while the server rows are locked (`SELECT … FOR UPDATE`),
  and the job is booked in the same transaction: two workers never overfill a server, and a
  dead worker leaves no counter behind.
- **Health**: a connection error, a 5xx, a foreign answer or a stall marks a server down
  (a conditional UPDATE); the dispatcher probes it back on a growing interval.
- **SWC's quirks**: a restart loses the server's queue — its tasks vanish (404) or stay
  PROCESSING forever — so a task gone, unreachable, or quiet for `SWC_STALL_SECONDS` while it
  should be running is sent again, to another server if there is one. ERROR gives no reason:
  the video is tried on another server, then the job fails. Whatever happens the job is the
  same row with the same hold, so it is charged once.

Nothing here blocks on a server: every step asks once and leaves a `next_check_at`.
"""

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import IO
from urllib.parse import urlsplit

import httpx
from botocore.exceptions import ClientError
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from apps.jobs import queue
from apps.jobs.models import InputKind, Job, JobState, SwcServer
from apps.jobs.providers import get_provider
from apps.jobs.providers.base import (
    CallbackRejected,
    ProviderError,
    ProviderUnavailable,
    TaskInput,
    TaskState,
    TaskStatus,
)
from apps.jobs.providers.swc import (
    NotSwc,
    ServerDown,
    SwcClient,
    SwcStatus,
    TaskVanished,
    VideoRefused,
)

logger = logging.getLogger("unmark.jobs")

PROVIDER = "swc"
ACTIVE_STATES = (JobState.SUBMITTED, JobState.PROCESSING)
MAX_PROBE_SECONDS = 60


# --- Configuration and clients -------------------------------------------------------------------
def configured_urls() -> list[str]:
    return [server["url"] for server in settings.SWC_SERVERS]


def is_enabled() -> bool:
    return bool(settings.SWC_SERVERS)


def servers() -> list[SwcServer]:
    """The configured servers' rows, created on first sight (a server left out of
    `SWC_SERVERS` keeps its row but gets no more work)."""
    urls = configured_urls()
    rows = list(SwcServer.objects.filter(url__in=urls))
    if len(rows) < len(urls):
        SwcServer.objects.bulk_create([SwcServer(url=url) for url in urls], ignore_conflicts=True)
        rows = list(SwcServer.objects.filter(url__in=urls))
    return rows


_clients: dict[tuple[int, str, str], SwcClient] = {}
_clients_lock = threading.Lock()


def client_for(server: SwcServer) -> SwcClient:
    """One pooled client per server and process (forked workers must not share sockets)."""
    authorization = next(
        (s["authorization"] for s in settings.SWC_SERVERS if s["url"] == server.url), ""
    )
    key = (os.getpid(), server.url, authorization)
    with _clients_lock:
        if any(pid != key[0] for pid, _, _ in _clients):
            _clients.clear()
        if key not in _clients:
            _clients[key] = SwcClient(
                base_url=server.url,
                authorization=authorization,
                timeout_seconds=settings.SWC_TIMEOUT_SECONDS,
                upload_timeout_seconds=settings.SWC_UPLOAD_TIMEOUT_SECONDS,
            )
        client = _clients[key]
    client.prefix = server.api_prefix
    return client


def forget_clients() -> None:
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


# --- Load and booking ----------------------------------------------------------------------------
def _load(urls: list[str]) -> dict[str, int]:
    rows = (
        Job.objects.filter(provider=PROVIDER, state__in=ACTIVE_STATES, provider_server__in=urls)
        .order_by()
        .values_list("provider_server")
        .annotate(count=Count("id"))
    )
    return dict(rows)


def free_slots() -> int:
    """How many more jobs the healthy servers can take right now."""
    healthy = [server.url for server in servers() if server.healthy]
    load = _load(healthy)
    return sum(max(0, settings.SWC_MAX_IN_FLIGHT - load.get(url, 0)) for url in healthy)


def places_to_hand_out() -> int:
    """Free places less the file jobs already handed to a worker to be sent (claimed: queued,
    their next check moved on) but not booked yet. Each of those will take a place; counting
    them keeps the dispatcher from handing the same places out again every round while the
    workers are slow to pick the sends up — sends that would find the servers full and go
    back in line, filling the task queue with more of the same. (A video paused after storage
    trouble counts too, for the few seconds of its pause: sending less then costs nothing.)"""
    in_hand = Job.objects.filter(
        provider=PROVIDER, state=JobState.QUEUED, next_check_at__gt=timezone.now()
    ).count()
    return max(0, free_slots() - in_hand)


def expected_wait(*, ahead: int = 0, sent_now: int = 0) -> float:
    """Seconds a new file would wait for a server to start it, with `ahead` queued files before
    it (and `sent_now` more just handed out): each healthy server works through its jobs one at
    a time, `SWC_SECONDS_PER_VIDEO` each. Infinite while no server is up."""
    healthy = [server.url for server in servers() if server.healthy]
    if not healthy:
        return float("inf")
    in_flight = sum(_load(healthy).values()) + sent_now
    # With h servers, the first h jobs start at once; each later one waits for a run to end.
    runs_before = max(0, in_flight + ahead + 1 - len(healthy))
    return runs_before * settings.SWC_SECONDS_PER_VIDEO / len(healthy)


def room_to_wait(*, sent_now: int = 0) -> int:
    """How many queued files may wait for the pool (beyond the `sent_now` going out) and still
    start within `SWC_OVERFLOW_WAIT_SECONDS`: the routing policy sends the rest elsewhere.
    The closed form of `expected_wait(ahead=n) <= SWC_OVERFLOW_WAIT_SECONDS`."""
    healthy = [server.url for server in servers() if server.healthy]
    if not healthy:
        return 0
    count = len(healthy)
    in_flight = sum(_load(healthy).values()) + sent_now
    within = settings.SWC_OVERFLOW_WAIT_SECONDS * count // settings.SWC_SECONDS_PER_VIDEO
    return max(0, within + count - in_flight)


def server_name(url: str) -> str:
    """How people know a server: its host's first name ("gpu-2" for https://gpu-2.internal),
    or its place in `SWC_SERVERS` ("gpu-2") when its address is a bare IP."""
    host = urlsplit(url).hostname or url
    if not host.replace(".", "").isdigit() and ":" not in host:
        return host.split(".")[0]
    urls = configured_urls()
    return f"gpu-{urls.index(url) + 1}" if url in urls else host


def book_server(job: Job) -> SwcServer | None:
    """Moves the queued job to SUBMITTED on the least-loaded healthy server with room.

    None when every server is full or down: the job stays queued. Among equally loaded
    servers the one booked longest ago wins, which spreads a batch evenly; a server that just
    lost this job is avoided while another has room.
    """
    urls = configured_urls()
    servers()
    now = timezone.now()
    with transaction.atomic():
        healthy = list(
            SwcServer.objects.select_for_update().filter(url__in=urls, healthy=True).order_by("id")
        )
        load = _load([server.url for server in healthy])
        with_room = [s for s in healthy if load.get(s.url, 0) < settings.SWC_MAX_IN_FLIGHT]
        if not with_room:
            return None
        lost_it = job.provider_server if len(with_room) > 1 else ""
        server = min(
            with_room,
            key=lambda s: (
                s.url == lost_it,
                load.get(s.url, 0),
                s.booked_at.timestamp() if s.booked_at else 0.0,
                s.pk,
            ),
        )
        if not job.move(
            JobState.SUBMITTED,
            detail="Sending the video to a cleaning server.",
            provider_server=server.url,
            attempts=job.attempts + 1,
            submitted_at=now,
            task_id="",
            provider_progress=None,
            progress_changed_at=now,
            next_check_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        ):
            return None
        SwcServer.objects.filter(pk=server.pk).update(booked_at=now)
    return server


# --- Health --------------------------------------------------------------------------------------
def _probe_delay(failures: int) -> timedelta:
    return timedelta(seconds=min(2 ** max(failures, 1), MAX_PROBE_SECONDS))


def mark_down(server: SwcServer, reason: str) -> bool:
    """Takes the server out of the pool until a probe finds it back; False if already down."""
    now = timezone.now()
    marked = SwcServer.objects.filter(pk=server.pk, healthy=True).update(
        healthy=False,
        down_reason=reason[:300],
        down_since=now,
        failures=F("failures") + 1,
        next_probe_at=now + _probe_delay(server.failures + 1),
    )
    if marked:
        logger.warning("swc server down", extra={"server": server.url, "reason": reason})
        if not SwcServer.objects.filter(url__in=configured_urls(), healthy=True).exists():
            # The whole pool is down: users see the banner, staff the alert, and the
            # dispatcher holds file jobs until a probe finds a server back.
            from apps.jobs.pipeline import record_provider_alert  # the pipeline imports us

            record_provider_alert(
                PROVIDER, ProviderUnavailable("No cleaning server is answering.", kind="down")
            )
    return bool(marked)


def probe_due_servers() -> int:
    """Asks each down server whose probe is due whether it is back; returns how many are.

    A probe is claimed by moving its time on, so two dispatchers never probe one server at once.
    """
    now = timezone.now()
    back = 0
    for server in SwcServer.objects.filter(
        url__in=configured_urls(), healthy=False, next_probe_at__lte=now
    ):
        if not SwcServer.objects.filter(pk=server.pk, next_probe_at=server.next_probe_at).update(
            next_probe_at=now + _probe_delay(server.failures)
        ):
            continue
        try:
            prefix = client_for(server).detect_prefix()
        except (ServerDown, NotSwc) as exc:
            SwcServer.objects.filter(pk=server.pk).update(down_reason=str(exc)[:300])
            continue
        if SwcServer.objects.filter(pk=server.pk, healthy=False).update(
            healthy=True, api_prefix=prefix, down_reason="", down_since=None, next_probe_at=None
        ):
            back += 1
            logger.info("swc server back", extra={"server": server.url})
    if back:
        from apps.jobs.pipeline import resolve_provider_alerts  # the pipeline imports us

        resolve_provider_alerts(PROVIDER)
    return back


def _known_prefix(server: SwcServer, client: SwcClient) -> None:
    if server.api_prefix is None:
        server.api_prefix = client.prefix = client.detect_prefix()
        SwcServer.objects.filter(pk=server.pk).update(api_prefix=server.api_prefix)


# --- Sending -------------------------------------------------------------------------------------
class OriginalMissing(Exception):
    """The uploaded original is no longer in storage."""


@contextmanager
def open_original(job: Job) -> Iterator[tuple[IO[bytes], int]]:
    """The stored original as a stream and its size, never read whole into memory.

    django-storages' S3 file object buffers the whole object (in memory by default), so from
    S3 the object's body is streamed straight from the GET instead.
    """
    name = str(job.original_file.name)
    if not name:
        raise OriginalMissing("the job has no stored original")
    storage = job.original_file.storage
    bucket = getattr(storage, "bucket", None)
    try:
        if bucket is not None:
            key = storage._normalize_name(name)  # type: ignore[attr-defined]
            answer = bucket.meta.client.get_object(Bucket=bucket.name, Key=key)
            body = answer["Body"]
            try:
                yield body, int(answer["ContentLength"])
            finally:
                body.close()
            return
        size = storage.size(name)
        with storage.open(name, "rb") as stream:
            yield stream, size
    except FileNotFoundError as exc:
        raise OriginalMissing(str(exc)) from exc
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise OriginalMissing(str(exc)) from exc
        raise OSError(f"storage: {exc}") from exc


def send_job(job: Job) -> None:
    """Books a server for the queued job and uploads the original to it."""
    if job.state != JobState.QUEUED:
        return
    if _past_deadline(job):
        job.fail(code="timeout", message=_too_late_message())
        return
    if job.attempts >= settings.SWC_MAX_SENDS:
        job.fail(
            code="swc_lost",
            message=f"The cleaning servers lost this video {job.attempts} times. "
            "Nothing was charged; please try again later.",
        )
        return
    server = book_server(job)
    if server is None:
        # Every server is full or down: the dispatcher sends it, in its turn, when one has room.
        job.touch(next_check_at=job.created_at)
        queue.start_poller()
        return
    try:
        task_id = get_provider(PROVIDER).start(TaskInput.for_job(job))
    except (ServerDown, NotSwc) as exc:
        mark_down(server, str(exc))
        # Not the video's fault: the try is not counted, and another server takes it at once.
        _back_in_line(job, detail="The cleaning server did not answer; trying another one.")
        return
    except VideoRefused as exc:
        job.fail(
            code="swc_refused",
            message=f"The cleaning server refused this video ({exc.message}). Nothing was charged.",
        )
        return
    except OriginalMissing:
        job.fail(
            code="original_missing",
            message="The uploaded video is no longer stored; please upload it again. "
            "Nothing was charged.",
        )
        return
    except OSError as exc:  # storage trouble reading the original: try again shortly
        logger.warning("swc original unreadable", extra={"job": job.public_id, "error": str(exc)})
        _back_in_line(
            job,
            detail="The uploaded video could not be read; trying again shortly.",
            after=timedelta(seconds=settings.JOB_LEASE_SECONDS),
        )
        return
    now = timezone.now()
    job.touch(
        task_id=task_id,
        provider_progress=0,
        progress_changed_at=now,
        next_check_at=now + timedelta(seconds=settings.SWC_POLL_SECONDS),
    )
    queue.start_poller()


def _renew_lease(job: Job, lease: timedelta) -> None:
    # A large upload sends no news until it is answered: this keeps the dispatcher from
    # presuming the worker dead meanwhile.
    job.touch(next_check_at=timezone.now() + lease)


def _back_in_line(job: Job, *, detail: str, after: timedelta | None = None) -> None:
    """Back in line without using a try: at its old place, or after a pause."""
    if job.move(
        JobState.QUEUED,
        detail=detail,
        attempts=job.attempts - 1,
        task_id="",
        provider_progress=None,
        next_check_at=timezone.now() + after if after else job.created_at,
    ):
        queue.start_poller()


# --- Following -----------------------------------------------------------------------------------
def check_job(job: Job) -> None:
    if job.state not in ACTIVE_STATES or not job.task_id:
        return
    server = SwcServer.objects.filter(url=job.provider_server).first()
    if server is None or server.url not in configured_urls():
        send_again(job, detail="Its cleaning server was taken out of service; sending it again.")
        return
    try:
        status = get_provider(PROVIDER).status(job.task_id)
    except TaskVanished:
        send_again(
            job, detail="The cleaning server restarted and lost this video; sending it again."
        )
        return
    except (ServerDown, NotSwc) as exc:
        mark_down(server, str(exc))
        if isinstance(exc, ServerDown) and exc.unreachable:
            # Nothing listens: the SWC process is gone, and its in-memory queue with it.
            send_all_again(
                server,
                detail="The cleaning server went away and lost this video; sending it again.",
            )
        else:
            _check_later_unless_stalled(job, server)
        return

    if status.state == TaskState.SUCCEEDED:
        _finished_on(server)
        _front_of_queue_moved(server.url, leaving=job)
        send_next()  # its place on the server is free now
        gpu_ms = _gpu_milliseconds(job)
        if job.move(
            JobState.DOWNLOADING,
            detail="The watermark is removed; saving the video.",
            result_url=status.result_urls[0],
            provider_cost_ms=gpu_ms,
            provider_cost_micros=gpu_cost_micros(gpu_ms),
            provider_progress=100,
            checks=job.checks + 1,
            next_check_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        ):
            queue.download(job.pk)
    elif status.state == TaskState.FAILED:
        _front_of_queue_moved(server.url, leaving=job)
        errors = job.provider_errors + 1
        if errors >= settings.SWC_MAX_ERRORS:
            job.fail(
                code="swc_error",
                message=f"The cleaning servers could not process this video ({errors} tries; "
                "they give no reason). Nothing was charged.",
            )
        else:
            send_again(
                job,
                detail="The cleaning server could not process this video; trying another one.",
                provider_errors=errors,
            )
    elif status.progress != job.provider_progress:
        _progressed(job, status.progress or 0, running=status.state == TaskState.RUNNING)
    else:
        _check_later_unless_stalled(job, server)


def _gpu_milliseconds(job: Job) -> int:
    """How long the server worked on the video: since the job last started running (as the
    server's percentage showed), or since it was sent if it finished before we saw it run.
    Measured by our polling, so to within `SWC_POLL_SECONDS`."""
    started = (
        job.events.filter(to_state=JobState.PROCESSING).values_list("created_at", flat=True).last()
    )
    if started is None or (job.submitted_at and started < job.submitted_at):
        started = job.submitted_at or job.created_at
    return max(0, int((timezone.now() - started).total_seconds() * 1000))


def gpu_cost_micros(milliseconds: int) -> int:
    """What that much GPU time costs us at `SWC_PRICE_PER_GPU_HOUR`, in millionths of a dollar
    (integers throughout, rounded half up)."""
    return (milliseconds * settings.SWC_PRICE_PER_GPU_HOUR_MICROS + 1_800_000) // 3_600_000


def _progressed(job: Job, percentage: int, *, running: bool) -> None:
    now = timezone.now()
    fields = {
        "provider_progress": percentage,
        "progress_changed_at": now,
        "checks": job.checks + 1,
        "next_check_at": now + timedelta(seconds=settings.SWC_POLL_SECONDS),
    }
    if running and job.state == JobState.SUBMITTED:
        job.move(JobState.PROCESSING, detail="The watermark is being removed.", **fields)
    else:
        job.touch(**fields)
    _keep_dispatcher_running()


def _check_later_unless_stalled(job: Job, server: SwcServer) -> None:
    now = timezone.now()
    quiet = now - _quiet_since(job, server, now)
    if quiet > timedelta(seconds=settings.SWC_STALL_SECONDS):
        # One video at a time: a run that stopped moving holds up everything behind it too.
        mark_down(server, f"a task made no progress for {quiet.total_seconds():.0f} s")
        send_all_again(
            server, detail="The cleaning server stopped making progress; sending it again."
        )
        return
    if _past_deadline(job):
        job.fail(code="timeout", message=_too_late_message())
        return
    job.touch(
        checks=job.checks + 1, next_check_at=now + timedelta(seconds=settings.SWC_POLL_SECONDS)
    )
    _keep_dispatcher_running()


def _quiet_since(job: Job, server: SwcServer, now: datetime) -> datetime:
    """Since when the job's task has shown no sign of life. A task waiting its turn (0 %)
    lives as long as the one running ahead of it on the same server moves."""
    since = job.progress_changed_at or job.submitted_at or now
    if not job.provider_progress:
        ahead = (
            Job.objects.filter(
                provider=PROVIDER, provider_server=server.url, state__in=ACTIVE_STATES
            )
            .exclude(pk=job.pk)
            .aggregate(latest=Max("progress_changed_at"))["latest"]
        )
        since = max(since, ahead) if ahead else since
    return since


def _keep_dispatcher_running() -> None:
    # The dispatcher stops when it sees nothing due soon, which is what it sees while every
    # check is handed out: the check that comes back due must not wait for the minute's sweep.
    queue.start_poller()


def send_again(job: Job, *, detail: str, **fields: object) -> bool:
    """Puts a job whose task was lost back in line, for another server. Same job, same hold:
    it is charged once however often it is sent."""
    server_url = job.provider_server
    if not job.move(
        JobState.QUEUED,
        detail=detail,
        task_id="",
        provider_progress=None,
        result_url="",
        # Due since it was created: it goes out before jobs that came after it.
        next_check_at=job.created_at,
        **fields,
    ):
        return False
    _front_of_queue_moved(server_url, leaving=job)
    send_next()
    queue.start_poller()
    return True


def send_next() -> bool:
    """A place on a server just freed up: the longest-waiting file job goes out now rather
    than at the dispatcher's next round, so the server's next video is there before it is
    done with the current one. Claimed like the dispatcher claims (its next check moved on),
    so the two never send one job twice."""
    from apps.jobs import routing  # routing asks the pool how long its line is

    if routing.first_choice(InputKind.FILE) != PROVIDER:
        return False  # switched off, or another provider comes first: the dispatcher decides
    now = timezone.now()
    waiting = (
        Job.objects.filter(input_kind=InputKind.FILE, state=JobState.QUEUED, next_check_at__lte=now)
        .order_by("next_check_at", "id")
        .values_list("pk", "next_check_at", "provider")
        .first()
    )
    if waiting is None:
        return False
    pk, next_check_at, provider = waiting
    lease = now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
    # Not started anywhere yet, so the pool may take it whoever it was in line for.
    moved = {} if provider == PROVIDER else {"provider": PROVIDER, "provider_server": ""}
    if not Job.objects.filter(pk=pk, state=JobState.QUEUED, next_check_at=next_check_at).update(
        next_check_at=lease, **moved
    ):
        return False
    queue.send_to_provider([pk], claimed_at=time.time())
    return True


def send_all_again(server: SwcServer, *, detail: str) -> int:
    """Every task the server holds is lost (it went away, or it is stuck): send them again."""
    sent = 0
    for job in Job.objects.filter(
        provider=PROVIDER, provider_server=server.url, state__in=ACTIVE_STATES
    ).exclude(task_id=""):
        sent += send_again(job, detail=detail)
    return sent


def _finished_on(server: SwcServer) -> None:
    SwcServer.objects.filter(pk=server.pk).update(
        failures=0, finished_count=F("finished_count") + 1
    )


def _front_of_queue_moved(server_url: str, *, leaving: Job) -> None:
    """A task left the server: the ones waiting behind it move up, and their stall clocks
    start now (a waiting task shows 0 % however long the one before it takes)."""
    Job.objects.filter(
        provider=PROVIDER, provider_server=server_url, state__in=ACTIVE_STATES
    ).filter(Q(provider_progress__isnull=True) | Q(provider_progress=0)).exclude(
        pk=leaving.pk
    ).update(progress_changed_at=timezone.now())


def _past_deadline(job: Job) -> bool:
    return timezone.now() - job.created_at > timedelta(seconds=settings.JOB_GIVE_UP_SECONDS)


def _too_late_message() -> str:
    minutes = settings.JOB_GIVE_UP_SECONDS // 60
    return (
        f"No cleaning server could finish this video within {minutes} minutes. "
        "Nothing was charged; please try again later."
    )


# --- Saving --------------------------------------------------------------------------------------
def download_client(job: Job) -> httpx.Client | None:
    """The pooled client (with its Authorization header) of the server that cleaned the job;
    None for other providers' jobs."""
    if job.provider != PROVIDER:
        return None
    server = SwcServer.objects.filter(url=job.provider_server).first()
    return client_for(server).http if server else None


# --- The pool as a provider ---------------------------------------------------------------------
class SwcPool:
    """The pool as the dispatcher and the registry see it: a provider that takes files, with
    as many starts as its healthy servers have free places. Its jobs run the steps above
    (the pipeline hands SWC jobs to `send_job` and `check_job`), which use `start` and `status`
    once a server is booked."""

    name = PROVIDER
    label = "Our cleaning servers"

    def __init__(self) -> None:
        self.accepts = frozenset({InputKind.FILE}) if is_enabled() else frozenset()

    def start(self, task: TaskInput) -> str:
        """Streams the job's stored original to the server booked for it (`book_server`)."""
        job = Job.objects.get(public_id=task.reference)
        server = SwcServer.objects.get(url=job.provider_server)
        client = client_for(server)
        _known_prefix(server, client)
        lease = timedelta(seconds=settings.JOB_LEASE_SECONDS)
        # Not `task.open`: django-storages' S3 file would buffer the whole object first.
        with open_original(job) as (stream, size):
            return client.submit(stream, size=size, heartbeat=lambda: _renew_lease(job, lease))

    def status(self, task_id: str) -> TaskStatus:
        url = (
            Job.objects.filter(provider=PROVIDER, task_id=task_id)
            .values_list("provider_server", flat=True)
            .first()
        )
        server = SwcServer.objects.filter(url=url).first() if url else None
        if server is None:
            raise TaskVanished(f"no server of the pool holds task {task_id}")
        client = client_for(server)
        result = client.result(task_id)
        if result.status == SwcStatus.FINISHED:
            url = client.download_url(task_id)
            return TaskStatus(task_id, TaskState.SUCCEEDED, result_urls=(url,), progress=100)
        if result.status == SwcStatus.ERROR:
            return TaskStatus(
                task_id,
                TaskState.FAILED,
                failure_code="error",
                failure_message="SWC reported ERROR (it never gives a reason)",
                progress=0,
            )
        running = result.status == SwcStatus.PROCESSING and result.percentage > 0
        state = TaskState.RUNNING if running else TaskState.PENDING
        return TaskStatus(task_id, state, progress=result.percentage)

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        raise CallbackRejected("SWC servers never call back")

    def claim_starts(self, wanted: int) -> tuple[int, float]:
        # The dispatcher asks before each hand-out: servers due for a probe are asked first,
        # so one that came back gets work in the same round.
        probe_due_servers()
        return min(wanted, places_to_hand_out()), time.time()

    def starting(self, claimed_at: float) -> None:
        """Nothing to move: the pool's starts are places on servers, booked when sent."""

    def seconds_until_start(self) -> float:
        return 0.0 if places_to_hand_out() else settings.SWC_POLL_SECONDS

    def starts_per_second(self) -> float:
        up = sum(server.healthy for server in servers()) or len(configured_urls())
        return max(up, 1) / settings.SWC_SECONDS_PER_VIDEO

    def probe(self) -> None:
        probe_due_servers()
        if not any(server.healthy for server in servers()):
            raise ProviderUnavailable("No cleaning server is answering.", kind="down")

    def remaining_credits(self) -> int:
        raise ProviderError("Self-hosted SWC servers have no credit balance.")

    def close(self) -> None:
        forget_clients()
