"""The pool of SoraWatermarkCleaner servers that cleans uploaded files, as one provider.

Each SWC server runs one video at a time and knows nothing of the others, so the pool is ours
to run. Its state lives in the database, shared by every worker machine (`SwcServer`,
`PoolTask`), and it knows nothing of jobs: a task names its job only by a reference.

- **Booking**: a task goes to the least-loaded healthy server with room (at most
  `SWC_MAX_IN_FLIGHT` tasks each, so the next upload overlaps the current run). The load is
  counted from the open tasks while the server rows are locked (`SELECT … FOR UPDATE`), and
  the task is booked in the same transaction: two workers never overfill a server, and a dead
  worker leaves nothing behind (an upload quiet for a lease stops holding its place).
- **Health**: a connection error, a 5xx, a foreign answer or a stall marks a server down
  (a conditional UPDATE); the dispatcher probes it back on a growing interval, every round
  whether or not there is work (`probe_machines`), so a server comes back while all is quiet.
- **SWC's quirks**: a restart loses the server's queue — its tasks vanish (404) or stay
  PROCESSING forever — so a task gone, unreachable, or quiet for `SWC_STALL_SECONDS` while it
  should be running is reported **lost** (the pipeline sends its video again, to another
  server if there is one). ERROR gives no reason: the video is worth another try elsewhere.

Nothing here blocks on a server: every call asks once.
"""

import logging
import os
import threading
import time
from contextlib import closing
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, QuerySet
from django.utils import timezone

from apps.removal import alerts
from apps.removal.base import (
    InputKind,
    InputMissing,
    Machine,
    PermanentError,
    ProviderUnavailable,
    RemovalProvider,
    RetryableError,
    SendAgain,
    TaskInput,
    TaskState,
    TaskStatus,
    room_within_overflow_wait,
)
from apps.removal.models import PoolTask, SwcServer
from apps.removal.swc.client import NotSwc, ServerDown, SwcClient, SwcStatus, TaskVanished

logger = logging.getLogger("unmark.removal")

MAX_PROBE_SECONDS = 60


# --- Configuration and clients -------------------------------------------------------------------
def configured_urls() -> list[str]:
    return [server["url"] for server in settings.SWC_SERVERS]


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


def server_name(url: str) -> str:
    """How people know a server: its host's first name ("gpu-2" for https://gpu-2.internal),
    or its place in `SWC_SERVERS` ("gpu-2") when its address is a bare IP."""
    host = urlsplit(url).hostname or url
    if not host.replace(".", "").isdigit() and ":" not in host:
        return host.split(".")[0]
    urls = configured_urls()
    return f"gpu-{urls.index(url) + 1}" if url in urls else host


# --- Load ---------------------------------------------------------------------------------------
def holding_places() -> QuerySet[PoolTask]:
    """The tasks that hold a place on their server: open ones, but for uploads whose worker
    went quiet for a whole lease (it died: the upload will never be answered)."""
    stale = timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    return PoolTask.objects.filter(ended_at__isnull=True).exclude(task_id="", alive_at__lt=stale)


def _load(urls: list[str]) -> dict[str, int]:
    rows = (
        holding_places()
        .filter(server__url__in=urls)
        .order_by()
        .values_list("server__url")
        .annotate(count=Count("id"))
    )
    return dict(rows)


def _healthy_urls() -> list[str]:
    return [server.url for server in servers() if server.healthy]


def free_slots() -> int:
    """How many more tasks the healthy servers can take right now."""
    healthy = _healthy_urls()
    load = _load(healthy)
    return sum(max(0, settings.SWC_MAX_IN_FLIGHT - load.get(url, 0)) for url in healthy)


def expected_wait(*, ahead: int = 0, sent_now: int = 0) -> float:
    """Seconds a new file would wait for a server to start it, with `ahead` queued files before
    it (and `sent_now` more just handed out): each healthy server works through its tasks one
    at a time, `SWC_SECONDS_PER_VIDEO` each. Infinite while no server is up."""
    healthy = _healthy_urls()
    if not healthy:
        return float("inf")
    in_flight = sum(_load(healthy).values()) + sent_now
    # With h servers, the first h tasks start at once; each later one waits for a run to end.
    runs_before = max(0, in_flight + ahead + 1 - len(healthy))
    return runs_before * settings.SWC_SECONDS_PER_VIDEO / len(healthy)


def room_to_wait(*, sent_now: int = 0) -> int:
    """How many queued files may wait for the pool (beyond the `sent_now` going out) and still
    start within `SWC_OVERFLOW_WAIT_SECONDS`: the routing policy sends the rest elsewhere.
    The closed form of `expected_wait(ahead=n) <= SWC_OVERFLOW_WAIT_SECONDS`."""
    healthy = _healthy_urls()
    return room_within_overflow_wait(
        machines=len(healthy),
        busy=sum(_load(healthy).values()) + sent_now,
        seconds_per_video=settings.SWC_SECONDS_PER_VIDEO,
    )


def book_server(reference: str) -> PoolTask | None:
    """Books a place for the video `reference` on the least-loaded healthy server with room.

    None when every server is full or down. Among equally loaded servers the one booked
    longest ago wins, which spreads a batch evenly; a server that just lost this video is
    avoided while another has room.
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
        lost_it = _server_that_lost(reference) if len(with_room) > 1 else None
        server = min(
            with_room,
            key=lambda s: (
                s.pk == lost_it,
                load.get(s.url, 0),
                s.booked_at.timestamp() if s.booked_at else 0.0,
                s.pk,
            ),
        )
        SwcServer.objects.filter(pk=server.pk).update(booked_at=now)
        return PoolTask.objects.create(
            reference=reference, server=server, booked_at=now, alive_at=now
        )


def _server_that_lost(reference: str) -> int | None:
    last = PoolTask.objects.filter(reference=reference).exclude(outcome=PoolTask.Outcome.FINISHED)
    return last.order_by("-id").values_list("server_id", flat=True).first()


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
            alerts.record(
                SwcPool.name,
                ProviderUnavailable("No cleaning server is answering.", kind="down"),
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
            # Still down: the next probe comes later, up to MAX_PROBE_SECONDS, so a server gone
            # for good is asked once a minute rather than every two seconds.
            SwcServer.objects.filter(pk=server.pk).update(
                down_reason=str(exc)[:300],
                failures=F("failures") + 1,
                next_probe_at=now + _probe_delay(server.failures + 1),
            )
            continue
        if SwcServer.objects.filter(pk=server.pk, healthy=False).update(
            healthy=True, api_prefix=prefix, down_reason="", down_since=None, next_probe_at=None
        ):
            back += 1
            logger.info("swc server back", extra={"server": server.url})
    if back:
        alerts.resolve(SwcPool.name)
    return back


def _known_prefix(server: SwcServer, client: SwcClient) -> None:
    if server.api_prefix is None:
        server.api_prefix = client.prefix = client.detect_prefix()
        SwcServer.objects.filter(pk=server.pk).update(api_prefix=server.api_prefix)


# --- A task's life -------------------------------------------------------------------------------
def _end(task: PoolTask, outcome: str, *, reason: str = "", **fields: object) -> bool:
    """Ends an open task (its place frees); False if it had already ended."""
    return bool(
        PoolTask.objects.filter(pk=task.pk, ended_at__isnull=True).update(
            ended_at=timezone.now(), outcome=outcome, lost_reason=reason[:300], **fields
        )
    )


def lose_all(server: SwcServer, *, reason: str) -> int:
    """Every task the server holds is lost (it went away, or it is stuck): each one's job
    hears so at its next check, and sends its video again."""
    return PoolTask.objects.filter(server=server, ended_at__isnull=True).update(
        ended_at=timezone.now(), outcome=PoolTask.Outcome.LOST, lost_reason=reason[:300]
    )


def _front_of_queue_moved(server: SwcServer, *, leaving: PoolTask) -> None:
    """A task left the server: the ones waiting behind it move up, and their stall clocks
    start now (a waiting task shows 0 % however long the one before it takes)."""
    PoolTask.objects.filter(server=server, ended_at__isnull=True).filter(
        Q(progress__isnull=True) | Q(progress=0)
    ).exclude(pk=leaving.pk).update(progress_changed_at=timezone.now())


def _quiet_since(task: PoolTask, now: datetime) -> datetime:
    """Since when the task has shown no sign of life. A task waiting its turn (0 %) lives as
    long as the one running ahead of it on the same server moves."""
    since = task.progress_changed_at or task.booked_at
    if not task.progress:
        ahead = (
            PoolTask.objects.filter(server=task.server, ended_at__isnull=True)
            .exclude(pk=task.pk)
            .aggregate(latest=Max("progress_changed_at"))["latest"]
        )
        since = max(since, ahead) if ahead else since
    return since


def gpu_cost_micros(milliseconds: int) -> int:
    """What that much GPU time costs us at `SWC_PRICE_PER_GPU_HOUR`, in millionths of a dollar
    (integers throughout, rounded half up)."""
    return (milliseconds * settings.SWC_PRICE_PER_GPU_HOUR_MICROS + 1_800_000) // 3_600_000


class SwcPool(RemovalProvider):
    """The pool as the pipeline sees it: a provider that takes files, with as many starts as
    its healthy servers have free places."""

    name = "swc"
    label = "Our cleaning servers"
    software_agent = "SoraWatermarkCleaner"
    # Customers never read a server's name or address: those are for staff.
    cleaned_by = "by our GPU servers"
    waits_for = "a free cleaning server"
    # Its servers answer at once: their tasks are followed closely, not on a back-off.
    poll_seconds = settings.SWC_POLL_SECONDS
    # A server that restarted between finishing and our download lost the video: clean it again.
    redoes_lost_results = True
    # ERROR gives no reason: the video is tried on another server before the job fails.
    tries_per_video = settings.SWC_MAX_ERRORS

    def __init__(self) -> None:
        self.accepts = frozenset({InputKind.FILE}) if settings.SWC_SERVERS else frozenset()

    @property
    def max_sends(self) -> int:
        return int(settings.SWC_MAX_SENDS)

    # --- Sending ------------------------------------------------------------------------------
    def start(self, task: TaskInput) -> str:
        """Books a server for the video and streams the stored original to it."""
        if task.open is None:
            raise PermanentError("The cleaning servers take only uploaded files.")
        booked = book_server(task.reference)
        if booked is None:
            # Every server filled up since the dispatcher counted: it sends it in its turn.
            raise SendAgain("Every cleaning server is busy.")
        server = booked.server
        client = client_for(server)

        def heartbeat() -> None:
            PoolTask.objects.filter(pk=booked.pk).update(alive_at=timezone.now())
            task.heartbeat()

        try:
            _known_prefix(server, client)
            stream, size = task.open()
            with closing(stream):
                task_id = client.submit(stream, size=size, heartbeat=heartbeat)
        except (ServerDown, NotSwc) as exc:
            _end(booked, PoolTask.Outcome.NOT_SENT)
            mark_down(server, str(exc))
            # Not the video's fault: another server takes it at once.
            raise SendAgain("The cleaning server did not answer; trying another one.") from exc
        except (PermanentError, InputMissing):
            _end(booked, PoolTask.Outcome.NOT_SENT)
            raise
        except OSError as exc:  # storage trouble reading the original: try again shortly
            _end(booked, PoolTask.Outcome.NOT_SENT)
            raise RetryableError(
                f"The uploaded video could not be read ({exc})",
                retry_after=settings.JOB_LEASE_SECONDS,
            ) from exc
        now = timezone.now()
        PoolTask.objects.filter(pk=booked.pk).update(
            task_id=task_id, progress=0, progress_changed_at=now, alive_at=now
        )
        return task_id

    # --- Following ----------------------------------------------------------------------------
    def status(self, task_id: str) -> TaskStatus:
        task = PoolTask.objects.select_related("server").filter(task_id=task_id).first()
        if task is None:
            return _lost(task_id, "No cleaning server holds this video any more; sending it again.")
        if task.ended_at is not None:
            return _ended_status(task)
        server = task.server
        if server.url not in configured_urls():
            reason = "Its cleaning server was taken out of service; sending it again."
            _end(task, PoolTask.Outcome.LOST, reason=reason)
            return _lost(task_id, reason)
        try:
            result = client_for(server).result(task_id)
        except TaskVanished:
            reason = "The cleaning server restarted and lost this video; sending it again."
            _end(task, PoolTask.Outcome.LOST, reason=reason)
            return _lost(task_id, reason)
        except (ServerDown, NotSwc) as exc:
            mark_down(server, str(exc))
            if isinstance(exc, ServerDown) and exc.unreachable:
                # Nothing listens: the SWC process is gone, and its in-memory queue with it.
                reason = "The cleaning server went away and lost this video; sending it again."
                lose_all(server, reason=reason)
                return _lost(task_id, reason)
            return self._unless_stalled(task)

        if result.status == SwcStatus.FINISHED:
            return self._finished(task)
        if result.status == SwcStatus.ERROR:
            _end(task, PoolTask.Outcome.ERROR)
            _front_of_queue_moved(server, leaving=task)
            return _error_status(task)
        running = result.status == SwcStatus.PROCESSING and result.percentage > 0
        if result.percentage != task.progress:
            now = timezone.now()
            PoolTask.objects.filter(pk=task.pk).update(
                progress=result.percentage,
                progress_changed_at=now,
                running_since=task.running_since or (now if running else None),
            )
            state = TaskState.RUNNING if running else TaskState.PENDING
            return TaskStatus(task_id, state, progress=result.percentage, machine=server.url)
        return self._unless_stalled(task, running=running)

    def _unless_stalled(self, task: PoolTask, *, running: bool = False) -> TaskStatus:
        now = timezone.now()
        quiet = now - _quiet_since(task, now)
        if quiet > timedelta(seconds=settings.SWC_STALL_SECONDS):
            # One video at a time: a run that stopped moving holds up everything behind it too.
            mark_down(task.server, f"a task made no progress for {quiet.total_seconds():.0f} s")
            reason = "The cleaning server stopped making progress; sending it again."
            lose_all(task.server, reason=reason)
            return _lost(task.task_id, reason)
        state = TaskState.RUNNING if running or task.running_since else TaskState.PENDING
        return TaskStatus(task.task_id, state, progress=task.progress, machine=task.server.url)

    def _finished(self, task: PoolTask) -> TaskStatus:
        now = timezone.now()
        started = task.running_since or task.booked_at
        gpu_ms = max(0, int((now - started).total_seconds() * 1000))
        if _end(task, PoolTask.Outcome.FINISHED, gpu_ms=gpu_ms):
            SwcServer.objects.filter(pk=task.server.pk).update(
                failures=0, finished_count=F("finished_count") + 1
            )
            _front_of_queue_moved(task.server, leaving=task)
        task.refresh_from_db()
        return _ended_status(task)

    def forget(self, task_id: str) -> None:
        if task_id:
            PoolTask.objects.filter(task_id=task_id, ended_at__isnull=True).update(
                ended_at=timezone.now(), outcome=PoolTask.Outcome.FORGOTTEN
            )

    def result_client(self, task_id: str) -> httpx.Client | None:
        """The pooled client (with its Authorization header) of the server that cleaned it."""
        task = PoolTask.objects.select_related("server").filter(task_id=task_id).first()
        return client_for(task.server).http if task else None

    # --- Capacity -----------------------------------------------------------------------------
    def claim_starts(self, wanted: int, *, in_hand: int = 0) -> tuple[int, float]:
        # Servers due for a probe are asked first, so one that came back gets work at once.
        # The places already handed out but not booked yet (`in_hand`) will each take one:
        # counting them keeps the dispatcher from handing the same places out every round.
        probe_due_servers()
        return min(wanted, max(0, free_slots() - in_hand)), time.time()

    def seconds_until_start(self, *, in_hand: int = 0) -> float:
        return 0.0 if free_slots() > in_hand else float(settings.SWC_POLL_SECONDS)

    def starts_per_second(self) -> float:
        up = sum(server.healthy for server in servers()) or len(configured_urls())
        return max(up, 1) / settings.SWC_SECONDS_PER_VIDEO

    def may_wait(self, *, sent_now: int) -> int:
        return room_to_wait(sent_now=sent_now)

    def probe(self) -> None:
        probe_due_servers()
        if not any(server.healthy for server in servers()):
            raise ProviderUnavailable("No cleaning server is answering.", kind="down")

    def tasks_ahead(self, task_id: str) -> int | None:
        """The videos its server runs before this one: one at a time, in the order booked."""
        task = PoolTask.objects.filter(task_id=task_id, ended_at__isnull=True).first()
        if task is None:
            return None
        return (
            holding_places()
            .filter(server_id=task.server_id)
            .filter(Q(booked_at__lt=task.booked_at) | Q(booked_at=task.booked_at, pk__lt=task.pk))
            .count()
        )

    def describe_machine(self, machine: str) -> str:
        return f"{server_name(machine)} ({machine})" if machine else ""

    def probe_machines(self) -> float | None:
        probe_due_servers()
        due = (
            SwcServer.objects.filter(url__in=configured_urls(), healthy=False)
            .exclude(next_probe_at=None)
            .aggregate(first=Min("next_probe_at"))["first"]
        )
        return None if due is None else max(0.0, (due - timezone.now()).total_seconds())

    def machines(self) -> list[Machine]:
        configured = set(configured_urls())
        busy = dict(holding_places().order_by().values_list("server__url").annotate(n=Count("id")))
        found = []
        for server in SwcServer.objects.all():
            if server.url not in configured:
                status = "removed"
            elif not server.healthy:
                status = "down"
            else:
                status = "busy" if busy.get(server.url) else "idle"
            found.append(
                Machine(
                    server_name(server.url),
                    server.url,
                    status,
                    busy.get(server.url, 0),
                    server.down_reason,
                )
            )
        return found

    def close(self) -> None:
        forget_clients()


def _lost(task_id: str, reason: str) -> TaskStatus:
    return TaskStatus(task_id, TaskState.LOST, failure_message=reason)


def _error_status(task: PoolTask) -> TaskStatus:
    return TaskStatus(
        task.task_id,
        TaskState.FAILED,
        failure_code="error",
        failure_message="they gave no reason (SWC reports only ERROR)",
        worth_another_try=True,
        progress=0,
        machine=task.server.url,
    )


def _ended_status(task: PoolTask) -> TaskStatus:
    """What a task that has ended comes to, however often it is asked (a check repeated after
    a worker died answers the same)."""
    if task.outcome == PoolTask.Outcome.FINISHED:
        gpu_ms = task.gpu_ms or 0
        return TaskStatus(
            task.task_id,
            TaskState.SUCCEEDED,
            result_urls=(client_for(task.server).download_url(task.task_id),),
            cost_time_ms=gpu_ms,
            cost_micros=gpu_cost_micros(gpu_ms),
            progress=100,
            machine=task.server.url,
        )
    if task.outcome == PoolTask.Outcome.ERROR:
        return _error_status(task)
    return _lost(task.task_id, task.lost_reason or "The cleaning server lost this video.")
