"""The soak: many jobs from many people and teams through every provider, on PostgreSQL and
Redis, two web servers and three worker clusters, while faults drawn from a seed hit them.

    export DATABASE_URL=postgres://unmark@127.0.0.1:5432/unmark_soak
    export REDIS_URL=redis://127.0.0.1:6379/13
    make soak                                                        # 300 jobs, seed 23
    .venv/bin/python bench/soak.py --jobs 2000 --seed 23 --minutes 5     # the CI size
    .venv/bin/python bench/soak.py --jobs 20000 --seed 23 --minutes 40   # the full soak

It grows from the multi-machine drill (`bench/cluster.py`, whose machines, people and checks it
shares through `bench/drill.py`) and adds: the Replicate simulator and Unmark's own remover
(files go to the SWC pool first and overflow to the remover and Replicate), people who share
teams, Stripe top-ups and refunds (signed webhooks, each delivered twice at once), and faults.

The faults are drawn from `--seed`, each at a share of the jobs ended, and printed as they
happen: Kie and SWC answering 5xx, 429 storms at Kie and Replicate, Kie paused, duplicate Kie
callbacks and Replicate webhooks, Unmark's remover switched off by staff (its files go to
Replicate meanwhile), an SWC server killed and started again (its tasks lost), a
worker cluster killed (`kill -9` of its process group) and started again, a web server killed
and started again, and once every database connection of the app terminated
(`pg_terminate_backend`). Each kind happens at least once.

At the end it proves, and exits 1 on any violation: every job ended; each was settled exactly
once (one hold, then a capture if it succeeded or a release if not); every balance is what
was granted, bought and refunded less what was captured, nothing held; each top-up credited
once and each refund taken back once; `manage.py reconcile` is clean; every task the providers
made came from a send of its job (provider tasks = jobs sent + re-sends, the re-sends counted
and explained by what their jobs' timelines say); no job was in flight past its deadline
(`JOB_GIVE_UP_SECONDS`, with a minute for the sweep); the memory (RSS) of every long-lived
process is sampled all along (first, last and highest printed), and each of the app's (web
servers, worker clusters) that lived through the run is flat (the simulators stand in for
services outside Unmark: shown, not judged); the run took at most `--minutes`. Figures:
throughput (jobs ÷ makespan), waiting (created → first sent) and total time p50/p95.
"""

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.drill import (
    PASSWORD,
    Batch,
    Person,
    Progress,
    Stack,
    Violation,
    first_sent,
    jobs_ended,
    ledger_kinds_by_job,
    load_average,
    page_error,
    percentiles,
    plan_batches,
    run_jobs,
    run_reconcile,
    stop_on_sigterm,
)
from tests.live import free_port

# A refused batch (a provider paused, too busy) is sent again this many times, a few seconds
# apart, as a person would; the same submission id makes nothing twice.
BATCH_ATTEMPTS = 60
# The dispatcher's sweep runs every minute: a job may end that much after its deadline.
DEADLINE_GRACE_SECONDS = 90
# RSS is sampled this often; a process is flat when its last sample is at most this much above
# the highest of its first half (the warm-up is in it: imports at the first task, caches, pools).
RSS_INTERVAL_SECONDS = 2.0
RSS_GROWTH_RATIO = 1.2
RSS_GROWTH_BYTES = 24 * 1024 * 1024
MB = 1024 * 1024


def main() -> int:
    args = parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "REDIS_URL"
    ):
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL: the soak needs both.")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="unmark-soak-"))
    logs = workdir / "logs"
    logs.mkdir()
    stack = SoakStack(args, workdir, logs)
    try:
        stack.start()
        print(
            f"soak: {args.jobs} jobs, seed {args.seed}, at most {args.minutes} min; "
            f"{args.people} people; 2 web servers, {args.clusters} worker clusters of "
            f"{args.workers} processes and a remover process each; Kie, 2 SWC, Replicate "
            f"simulators; load average {load_average()}",
            flush=True,
        )
        Soak(stack, args).run()
    except Violation as exc:
        print(f"\nVIOLATION: {exc}\nlogs and data: {workdir}")
        return 1
    finally:
        stack.stop()
    print(f"load average at the end: {load_average()}")
    print(f"logs and data: {workdir}")
    return 0


class SoakStack(Stack):
    """The drill's machines, with the Replicate simulator, Unmark's remover in every worker
    cluster, and Stripe's webhooks."""

    def extra_env(self) -> dict[str, str]:
        from tests.billing.stripe_fakes import WEBHOOK_SECRET

        self.replicate_port = free_port()
        return {
            "REPLICATE_SIMULATOR": "1",
            "REPLICATE_SIMULATOR_PORT": str(self.replicate_port),
            "REMOVER_PROCESSES": "1",
            "FILE_PROVIDERS": "swc,local,replicate",
            # Files that would wait more than this for the pool go to the remover or Replicate:
            # every file provider takes its share.
            "SWC_OVERFLOW_WAIT_SECONDS": "2",
            # A provider that was down or paused is asked again this soon (production: 15 s).
            "PROVIDER_PROBE_SECONDS": "3",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }

    def start_more(self, manage: list[str]) -> list[int]:
        self._start("replicate", [*manage, "replicate_simulator", "--port",
                                  str(self.replicate_port), "--processing", "0.5"])  # fmt: skip
        return [self.replicate_port]

    def sample_clip(self) -> bytes:
        """A short clip with a mark Unmark's remover finds (the drill's own is too small for
        it), as its worker test uses."""
        from tests.removal.engine.synthetic import ClipSpec, write_clip

        spec = ClipSpec("soak", 352, 640, 1.0, "chelsea", speed=1.5, segment_seconds=5, seed=11)
        return write_clip(spec, self.workdir / "sora-export.mp4").read_bytes()

    def simulator(self, name: str) -> str:
        port = {"kie": self.kie_port, "replicate": self.replicate_port}.get(name)
        return f"http://127.0.0.1:{port or name.removeprefix('swc-')}"


# --- Faults ---------------------------------------------------------------------------------
KINDS = (
    "kie_5xx",
    "swc_5xx",
    "kie_429_storm",
    "replicate_429_storm",
    "kie_paused",
    "local_switched_off",
    "duplicate_callbacks",
    "swc_killed",
    "worker_killed",
    "web_restarted",
    "database_connections_lost",
)


@dataclass
class Fault:
    kind: str
    at: float  # share of the jobs ended when it starts
    seconds: float  # how long it lasts (a storm, a pause, a server down)
    target: int  # which server or cluster, where there are several
    started: float | None = None
    ended: float | None = None
    note: str = ""


def draw_faults(seed: int, jobs: int) -> list[Fault]:
    """Every kind once, and more drawn at random as the run grows (a database connection loss
    only once), each at a random share of the jobs ended."""
    rng = random.Random(seed)
    extra = [rng.choice(KINDS[:-1]) for _ in range(jobs // 400)]
    faults = [
        Fault(
            kind=kind,
            at=rng.uniform(0.05, 0.8),
            seconds=round(rng.uniform(2, 8), 1),
            target=rng.randrange(3),
        )
        for kind in [*KINDS, *extra]
    ]
    return sorted(faults, key=lambda fault: fault.at)


class Faults:
    """Starts each fault when its share of the jobs has ended and undoes it when its time is up;
    logs both."""

    def __init__(self, stack: SoakStack, faults: list[Fault], started: float) -> None:
        self.stack = stack
        self.pending = list(faults)
        self.active: list[Fault] = []
        self.done: list[Fault] = []
        self.started = started
        self.http = httpx.Client(timeout=10)
        # SWC tasks listed by servers just before they were killed (a restart forgets them).
        self.swc_lost: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.starting: list[threading.Thread] = []

    def tick(self, share_ended: float) -> None:
        now = time.monotonic()
        for fault in [f for f in self.active if now >= (f.started or now) + f.seconds]:
            self._try(self._undo, fault)
            fault.ended = now - self.started
            self.active.remove(fault)
            self.done.append(fault)
            if fault.seconds:
                self._log(fault, "ended")
        while self.pending and self.pending[0].at <= share_ended:
            fault = self.pending.pop(0)
            fault.started = time.monotonic()
            self._try(self._do, fault)
            self._log(fault, "started")
            self.active.append(fault)

    def finish(self) -> None:
        """Undoes what is still active (the run ended first); waits for the servers starting."""
        for fault in list(self.active):
            fault.started = 0.0
        self.tick(share_ended=0.0)
        for thread in self.starting:
            thread.join()

    def _try(self, step: Callable[[Fault], None], fault: Fault) -> None:
        try:
            step(fault)
        except (httpx.TransportError, ProcessLookupError):
            # Its server was already down (another fault killed it; it is starting again):
            # nothing to break or to undo there.
            if "was down" not in fault.note:
                fault.note += " (its server was down)"

    def _log(self, fault: Fault, what: str) -> None:
        moment = time.monotonic() - self.started
        line = f"[{moment:7.1f} s] fault {fault.kind} {what} {fault.note}".rstrip()
        print(f"\r{line:80}", flush=True)

    def _config(self, name: str, changes: dict[str, Any]) -> None:
        answer = self.http.post(f"{self.stack.simulator(name)}/__sim__/config", json=changes)
        answer.raise_for_status()

    def _swc(self, fault: Fault) -> str:
        return f"swc-{self.stack.swc_ports[fault.target % len(self.stack.swc_ports)]}"

    def _do(self, fault: Fault) -> None:
        from apps.removal.routing import switch

        stack = self.stack
        match fault.kind:
            case "kie_5xx":
                self._config("kie", {"api_fault": "html"})  # a proxy's 502 page
            case "swc_5xx":
                self._config(self._swc(fault), {"proxy_status": 502})
                fault.note = self._swc(fault)
            case "kie_429_storm":
                self._config("kie", {"rate_limit": 3})
            case "replicate_429_storm":
                self._config("replicate", {"rate_limit": 2})
            case "kie_paused":
                self._config("kie", {"paused": True})
            case "local_switched_off":
                # By staff, as from the admin: its files go to Replicate meanwhile.
                switch(name="local", enabled=False, reason="soak", by=None)
            case "duplicate_callbacks":
                self._config("kie", {"callback_repeats": 3})
                self._config("replicate", {"webhook_repeats": 3})
            case "swc_killed":
                name = self._swc(fault)
                self.swc_lost[name] += swc_tasks(self.http, stack.simulator(name))
                stack.kill(name)
                fault.note = name
            case "worker_killed":
                worker = stack.workers[fault.target % len(stack.workers)]
                worker.kill()
                stack.workers.remove(worker)
                time.sleep(1)
                stack.start_worker()
                fault.seconds = 0
                fault.note = f"(pid {worker.process.pid}; a new cluster started)"
            case "web_restarted":
                port = stack.web_ports[fault.target % len(stack.web_ports)]
                stack.kill(f"web-{port}")
                fault.note = f"web-{port}"
            case "database_connections_lost":
                fault.note = f"({terminate_app_connections()} connections terminated)"
                fault.seconds = 0

    def _undo(self, fault: Fault) -> None:
        from apps.removal.routing import switch

        match fault.kind:
            case "kie_5xx":
                self._config("kie", {"api_fault": ""})
            case "swc_5xx":
                self._config(self._swc(fault), {"proxy_status": 0})
            case "kie_429_storm":
                self._config("kie", {"rate_limit": 1000})
            case "replicate_429_storm":
                self._config("replicate", {"rate_limit": 600})
            case "kie_paused":
                self._config("kie", {"paused": False})
            case "local_switched_off":
                switch(name="local", enabled=True, reason="soak", by=None)
            case "duplicate_callbacks":
                self._config("kie", {"callback_repeats": 1})
                self._config("replicate", {"webhook_repeats": 1})
            case "swc_killed":
                name = self._swc(fault)
                self._start_again(name, int(name.removeprefix("swc-")))
            case "web_restarted":
                port = self.stack.web_ports[fault.target % len(self.stack.web_ports)]
                self._start_again(f"web-{port}", port)

    def _start_again(self, name: str, port: int) -> None:
        # In the background: a server takes a while to start on a busy machine, and the other
        # faults keep their times meanwhile.
        thread = threading.Thread(target=self.stack.start_again, args=(name, port), daemon=True)
        thread.start()
        self.starting.append(thread)


def terminate_app_connections() -> int:
    """Every other connection to the database ends, as when PostgreSQL restarts under the app
    (this process keeps the one it asks with)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return sum(1 for (ended,) in cursor.fetchall() if ended)


def swc_tasks(http: httpx.Client, url: str) -> list[dict[str, Any]]:
    return list(http.get(f"{url}/__sim__/tasks").json()["tasks"])


# --- Memory ----------------------------------------------------------------------------------
class RssSampler:
    """Samples the RSS of every process of every long-lived machine (each process of a group:
    gunicorn's workers, a cluster's django-q2 processes and remover) from a thread."""

    def __init__(self, stack: SoakStack) -> None:
        self.stack = stack
        self.samples: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def _machines(self) -> list[tuple[str, int]]:
        machines = [
            (name, process.pid)
            for name, process in self.stack.named.items()
            if process.poll() is None
        ]
        # A cluster is named by its main process: a killed one's successor is another cluster.
        return machines + [("worker", worker.process.pid) for worker in self.stack.workers]

    def _run(self) -> None:
        while not self.stopping.wait(RSS_INTERVAL_SECONDS):
            now = time.monotonic()
            for name, pid in self._machines():
                try:
                    root = psutil.Process(pid)
                    group = [root, *root.children(recursive=True)]
                    for process in group:
                        role = "main" if process is root else f"child of {pid}"
                        label = f"{name} {process.pid} ({role})"
                        self.samples[label].append((now, process.memory_info().rss))
                except psutil.Error:
                    continue  # it ended between the listing and the reading

    def report(self) -> list[str]:
        """Prints first / last / highest per process; returns the app's processes that grew."""
        grew, short = [], 0
        rounds = sorted({moment for series in self.samples.values() for moment, _ in series})
        print("RSS of long-lived processes (MB: first / last / highest):")
        for label, series in sorted(self.samples.items()):
            values = [rss for _, rss in series]
            # Only processes there from the first round to the last have a trend to read;
            # the others (killed clusters and their successors, restarted servers, recycled
            # task and remover processes) start cold mid-run: counted, not judged.
            if series[0][0] != rounds[0] or series[-1][0] != rounds[-1] or len(values) < 10:
                short += 1
                continue
            warm = max(values[: len(values) // 2])
            flat = values[-1] <= warm * RSS_GROWTH_RATIO + RSS_GROWTH_BYTES
            # The simulators and moto stand in for services outside Unmark: shown, not judged.
            app = label.startswith(("web-", "worker"))
            verdict = ("flat" if flat else "GREW") if app else "(a stand-in, not judged)"
            print(f"  {label:36} {values[0] / MB:6.1f} / {values[-1] / MB:6.1f} / "
                  f"{max(values) / MB:6.1f}  {verdict}")  # fmt: skip
            if app and not flat:
                grew.append(label)
        print(f"  and {short} processes that did not live through the whole run")
        return grew


# --- Money -----------------------------------------------------------------------------------
class Payments:
    """Stripe, for the soak's teams: top-ups paid and some refunded in part, each event signed
    and delivered twice at once (Stripe may repeat one, even concurrently), retried while the
    app answers an error (as Stripe retries)."""

    def __init__(self, base_url: str, label: str, teams: list[Any], count: int, seed: int):
        self.url = f"{base_url}/hooks/stripe/"
        self.label = label
        self.teams = teams
        self.count = count
        self.rng = random.Random(seed + 1)
        self.errors: list[str] = []
        self.refunds = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from django.db import close_old_connections

        try:
            for index in range(self.count):
                time.sleep(self.rng.uniform(0.2, 2.0))
                # The database may have dropped this thread's connection (a fault): reconnect.
                close_old_connections()
                self._top_up(index, refund=index % 2 == 0)
        except Exception as exc:  # the main thread reports it
            self.errors.append(f"payments: {type(exc).__name__}: {exc}")

    def _top_up(self, index: int, *, refund: bool) -> None:
        from apps.billing.models import TopUp
        from apps.billing.services import price_cents
        from tests.billing.stripe_fakes import charge, checkout_session, event

        credits = self.rng.choice([50, 100, 250])
        # What `start_checkout` saves once Stripe has made the session.
        topup = TopUp.objects.create(
            team=self.rng.choice(self.teams),
            credits=credits,
            amount_cents=price_cents(credits),
            checkout_session_id=f"cs_{self.label}_{index}",
        )
        self._deliver(
            event(
                "checkout.session.completed",
                checkout_session(topup),
                event_id=f"evt_{self.label}_{index}_paid",
            )
        )
        if refund:
            self._deliver(
                event(
                    "charge.refunded",
                    charge(
                        payment_intent=f"pi_for_{topup.checkout_session_id}",
                        amount=topup.amount_cents,
                        amount_refunded=topup.amount_cents // 2,
                        charge_id=f"ch_{self.label}_{index}",
                    ),
                    event_id=f"evt_{self.label}_{index}_refunded",
                )
            )
            self.refunds += 1

    def _deliver(self, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda _: self._post(payload), range(2)))

    def _post(self, payload: bytes) -> None:
        from tests.billing.stripe_fakes import sign

        for _ in range(40):
            try:
                answer = httpx.post(
                    self.url,
                    content=payload,
                    headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
                    timeout=30,
                )
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass  # its web server died under it: Stripe sends it again
            time.sleep(0.5)
        raise Violation(f"a Stripe event was never accepted: {payload[:120]!r}")


# --- People ---------------------------------------------------------------------------------
class SoakPerson(Person):
    """A person who sends a refused batch again a little later (a provider paused, or too
    busy), as the page's message asks, and may send to a team they are a member of."""

    def __init__(self, email: str, base_url: str, progress: Progress, team: str | None) -> None:
        super().__init__(email, base_url, progress)
        self.shared_team = team
        self.refusals: Counter[str] = Counter()

    def sign_in(self) -> None:
        super().sign_in()
        if self.shared_team:
            self.team = self.shared_team

    def send_batch(self, batch: Batch) -> None:
        uploads = [self.upload(name, content) for name, content in batch.files]
        for _ in range(BATCH_ATTEMPTS):
            answer = self.request(
                "POST",
                f"{self.team}jobs/",
                data={
                    "links": "\n".join(batch.links),
                    "uploads": uploads,
                    "submission": batch.submission,
                    "owns_videos": "on",
                },
            )
            if answer.status_code == 302 or "already added when this form" in answer.text:
                return
            reason = page_error(answer)
            self.refusals[refusal_words(reason)] += 1
            if self.progress.stopping.wait(random.uniform(2, 4)):
                return
        raise Violation(f"a batch was refused {BATCH_ATTEMPTS} times: {reason}")


def refusal_words(error: str) -> str:
    """The gist of a refusal, for counting them: its first words without markup."""
    text = " ".join(error.replace(">", "> ").split())
    start = text.find("<li>")
    words = text[start + 4 :].split() if start >= 0 else text.split()
    return " ".join(word for word in words[:8] if "<" not in word)


def make_teams(label: str, people: int, jobs: int) -> list[tuple[str, str | None]]:
    """People with personal teams and credits; every third one also belongs to the team of the
    one before and sends there. Returns (email, team path or None for their own)."""
    from django.urls import reverse

    from apps.accounts.models import Membership, Role, User
    from apps.billing import ledger
    from apps.billing.welcome import onboard_new_user

    made: list[tuple[str, str | None]] = []
    teams: list[Any] = []
    for index in range(people):
        email = f"{label}-{index}@soak.example"
        user = User.objects.create_user(email, PASSWORD)
        team = onboard_new_user(user=user)
        ledger.grant(team=team, credits=jobs * 10, key=f"soak:{team.pk}", memo="soak")
        shared = None
        if index % 3 == 2:
            Membership.objects.create(team=teams[-1], user=user, role=Role.MEMBER)
            dashboard = reverse("jobs:dashboard", kwargs={"team_id": teams[-1].public_id})
            shared = dashboard.removesuffix("dashboard/")
        teams.append(team)
        made.append((email, shared))
    return made


# --- The run ---------------------------------------------------------------------------------
@dataclass
class Soak:
    stack: SoakStack
    args: argparse.Namespace
    label: str = field(default_factory=lambda: f"soak-{uuid.uuid4().hex[:6]}")

    def run(self) -> None:
        args, stack = self.args, self.stack
        people = make_teams(self.label, args.people, args.jobs)
        from apps.accounts.models import Team

        teams = list(Team.objects.filter(memberships__user__email__startswith=f"{self.label}-"))
        batches = plan_batches(self.label, args.jobs, args.batch, stack.sample_clip())
        for worker in [stack.start_worker() for _ in range(args.clusters)]:
            worker.wait_until_running()
        faults = draw_faults(args.seed, args.jobs)
        print("faults drawn: " + ", ".join(f"{f.kind} at {f.at:.0%}" for f in faults))
        progress = Progress()
        rss = RssSampler(stack)
        rss.start()
        payments = Payments(
            stack.base_url, self.label, teams, count=max(6, args.jobs // 100), seed=args.seed
        )
        started = time.monotonic()
        limit = started + args.minutes * 60
        injector = Faults(stack, faults, started)
        late: set[int] = set()
        senders = [SoakPerson(email, stack.base_url, progress, team) for email, team in people]
        payments.start()
        with ThreadPoolExecutor(max_workers=len(senders)) as pool:
            sent = [
                pool.submit(person.send, batches[i :: len(senders)])
                for i, person in enumerate(senders)
            ]
            try:
                while True:
                    if time.monotonic() > limit:
                        break  # the proofs below say what had not ended
                    ended = jobs_ended(self.label)
                    print(f"\r{self.label}: {progress.batches_sent}/{len(batches)} batches "
                          f"sent, {ended}/{args.jobs} jobs ended ", end="", flush=True)  # fmt: skip
                    if progress.errors or payments.errors:
                        raise Violation((progress.errors + payments.errors)[0])
                    injector.tick(ended / args.jobs)
                    late |= self.past_deadline()
                    if (
                        ended >= args.jobs
                        and all(future.done() for future in sent)
                        and not payments.thread.is_alive()
                        and not injector.pending
                    ):
                        break
                    time.sleep(0.5)
            finally:
                progress.stopping.set()
                injector.finish()
        duration = time.monotonic() - started
        rss.stop()
        if progress.errors or payments.errors:
            raise Violation((progress.errors + payments.errors)[0])
        print()
        refusals = sum((person.refusals for person in senders), Counter())
        print(f"faults: {len(injector.done)} ({dict(Counter(f.kind for f in injector.done))}); "
              f"{progress.failovers} requests sent again to the other web server; batches "
              f"refused and sent again: {dict(refusals.most_common(5))}")  # fmt: skip
        violations = self.check(len(batches), teams, payments, injector, late)
        if duration > args.minutes * 60:
            violations.append(f"not done within {args.minutes} minutes")
        grew = rss.report()
        if grew:
            violations.append(f"memory grew: {', '.join(grew)}")
        print(f"run time {duration:.1f} s (limit {args.minutes} min)")
        if violations:
            raise Violation("\n  ".join(violations))

    def past_deadline(self) -> set[int]:
        """Jobs still in flight a sweep's time after they should have been given up."""
        from datetime import timedelta

        from django.conf import settings
        from django.db import close_old_connections
        from django.utils import timezone

        from apps.jobs.models import IN_FLIGHT_STATES

        close_old_connections()
        allowed = timedelta(seconds=settings.JOB_GIVE_UP_SECONDS + DEADLINE_GRACE_SECONDS)
        overdue = run_jobs(self.label).filter(
            state__in=IN_FLIGHT_STATES, created_at__lt=timezone.now() - allowed
        )
        return set(overdue.values_list("pk", flat=True))

    # --- The proofs ----------------------------------------------------------------------------
    def check(
        self,
        batches: int,
        teams: list[Any],
        payments: Payments,
        injector: Faults,
        late: set[int],
    ) -> list[str]:
        from apps.jobs.models import JobState

        violations: list[str] = []
        jobs = list(run_jobs(self.label).select_related("team"))
        states, kinds = Counter(job.state for job in jobs), Counter(job.input_kind for job in jobs)
        providers = Counter(job.provider for job in jobs)
        print(f"{len(jobs)} jobs {dict(kinds)}; states {dict(states)}; "
              f"providers {dict(providers)}")  # fmt: skip
        if len(jobs) != self.args.jobs:
            violations.append(f"{len(jobs)} jobs were made for {self.args.jobs} sent")
        if len({job.submission_id for job in jobs}) != batches:
            violations.append(f"the jobs came from other than the {batches} batches sent")
        if stuck := [job for job in jobs if job.is_in_flight]:
            violations.append(
                f"{len(stuck)} jobs never ended ({dict(Counter(j.state for j in stuck))})"
            )
        if late:
            violations.append(f"{len(late)} jobs were in flight past their deadline")
        # Settled exactly once: one hold, then a capture for a success or a release otherwise.
        entries = ledger_kinds_by_job([job.pk for job in jobs])
        wrong = [
            job
            for job in jobs
            if sorted(entries[job.pk])
            != (["capture", "hold"] if job.state == JobState.SUCCEEDED else ["hold", "release"])
        ]
        print(f"settled once each: {len(jobs) - len(wrong)}/{len(jobs)}")
        if wrong:
            violations.append(
                f"{len(wrong)} jobs not settled exactly once, e.g. job {wrong[0].pk} "
                f"({wrong[0].state}): {entries[wrong[0].pk]}"
            )
        if failed := [job for job in jobs if job.state != JobState.SUCCEEDED]:
            print(f"did not succeed: {dict(Counter(job.failure_code for job in failed))}")
        violations += self.check_money(jobs, teams, payments)
        violations += self.check_tasks(jobs, injector)
        reconcile = run_reconcile()
        print(f"reconcile: {reconcile.stdout.strip() or reconcile.stderr.strip()}")
        if reconcile.returncode:
            violations.append(f"reconcile found drift:\n{reconcile.stdout}{reconcile.stderr}")
        self.figures(jobs)
        return violations

    def check_money(self, jobs: list[Any], teams: list[Any], payments: Payments) -> list[str]:
        from django.db.models import Sum

        from apps.billing import ledger
        from apps.billing.models import EntryKind, LedgerEntry, StripeEvent, TopUp, TopUpStatus

        violations = []
        topups = TopUp.objects.filter(checkout_session_id__startswith=f"cs_{self.label}_")
        credited = Counter(
            LedgerEntry.objects.filter(topup__in=topups, kind=EntryKind.TOPUP).values_list(
                "topup_id", flat=True
            )
        )
        clawed = Counter(
            LedgerEntry.objects.filter(topup__in=topups, kind=EntryKind.CLAWBACK).values_list(
                "topup_id", flat=True
            )
        )
        refunded = [topup for topup in topups if topup.refunded_cents]
        if (
            topups.exclude(status=TopUpStatus.PAID).exists()
            or set(credited.values()) - {1}
            or len(credited) != topups.count()
            or set(clawed.values()) - {1}
            or len(clawed) != len(refunded)
            or len(refunded) != payments.refunds
        ):
            violations.append(
                f"top-ups: {topups.count()} made, {len(credited)} credited "
                f"{dict(Counter(credited.values()))} times, {len(clawed)} refunds taken back "
                f"of {payments.refunds}"
            )
        unprocessed = StripeEvent.objects.filter(processed_at=None).count()
        print(f"top-ups: {topups.count()} paid and credited once each, {len(clawed)} of them "
              f"refunded in part and taken back once; every event delivered twice "
              f"({unprocessed} unprocessed)")  # fmt: skip
        if unprocessed:
            violations.append(f"{unprocessed} Stripe events were never processed")
        for team in teams:
            wallet = ledger.open_wallet(team)
            paid = sum(
                job.credits for job in jobs if job.team_id == team.pk and job.state == "succeeded"
            )
            moved = LedgerEntry.objects.filter(
                team=team,
                kind__in=[EntryKind.GRANT, EntryKind.TOPUP, EntryKind.CLAWBACK],
            ).aggregate(total=Sum("amount"))["total"]
            if wallet.held or wallet.balance != moved - paid:
                violations.append(
                    f"team {team.pk} has {wallet.held} held and {wallet.balance} left, "
                    f"not {moved - paid}"
                )
        return violations

    def check_tasks(self, jobs: list[Any], injector: Faults) -> list[str]:
        """Every task a provider made came from a send of its job: provider tasks = jobs sent +
        re-sends, and each re-send is explained by its job's timeline."""
        from apps.jobs.models import JobEvent, JobState
        from apps.removal.models import PoolTask

        by_token = {job.callback_token: job for job in jobs}
        by_public = {str(job.public_id): job for job in jobs}
        tasks: dict[str, Counter[int]] = {name: Counter() for name in ("kie", "replicate", "swc")}
        unknown: Counter[str] = Counter()
        http, stack = injector.http, self.stack
        for task in http.get(f"{stack.simulator('kie')}/__sim__/tasks").json()["tasks"]:
            job = by_token.get(task["callBackUrl"].rstrip("/").rsplit("/", 1)[-1])
            if job is None:
                unknown["kie"] += 1
            else:
                tasks["kie"][job.pk] += 1
        predictions = http.get(f"{stack.simulator('replicate')}/__sim__/predictions").json()
        for prediction in predictions["predictions"]:
            token = (prediction["webhook"] or "").split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            job = by_token.get(token)
            if job is None:
                unknown["replicate"] += 1
            else:
                tasks["replicate"][job.pk] += 1
        swc = [task for name, lost in injector.swc_lost.items() for task in lost]
        for port in stack.swc_ports:
            swc += swc_tasks(http, stack.simulator(f"swc-{port}"))
        references = dict(
            PoolTask.objects.filter(task_id__in=[t["task_id"] for t in swc]).values_list(
                "task_id", "reference"
            )
        )
        for task in swc:
            job = by_public.get(references.get(task["task_id"], ""))
            if job is None:
                unknown["swc"] += 1
            else:
                tasks["swc"][job.pk] += 1

        events: dict[int, list[Any]] = defaultdict(list)
        for event in JobEvent.objects.filter(job__in=jobs).order_by("created_at", "id"):
            events[event.job_id].append(event)
        sends = {
            job.pk: sum(e.to_state == JobState.SUBMITTED for e in events[job.pk]) for job in jobs
        }
        made = Counter[int]()
        for counter in tasks.values():
            made.update(counter)
        violations = []
        # A send whose answer never came (5xx, 429, a dead server) made no task: tasks <= sends.
        if over := [pk for pk in made if made[pk] > sends.get(pk, 0)]:
            violations.append(
                f"{len(over)} jobs have more provider tasks than sends, e.g. job {over[0]}"
            )
        # A task whose answer was lost (its server killed or failing mid-answer) is one the app
        # never learned the id of: it shows as a booking without a task id, and the job is sent
        # again elsewhere. Any other task of no job is a send nobody recorded.
        unconfirmed = PoolTask.objects.filter(reference__in=list(by_public), task_id="").count()
        print(f"swc tasks whose answer was lost: {unknown['swc']} "
              f"({unconfirmed} bookings never confirmed)")  # fmt: skip
        if unknown["swc"] <= unconfirmed:
            del unknown["swc"]
        if unknown:
            violations.append(f"provider tasks of no job: {dict(unknown)}")
        # Why each job went to a provider again: the step of its timeline before the re-send.
        reasons: Counter[str] = Counter()
        for job in jobs:
            timeline = events[job.pk]
            firsts = [i for i, e in enumerate(timeline) if e.to_state == JobState.SUBMITTED]
            for i in firsts[1:]:
                reasons[" ".join(timeline[i - 1].detail.split()[:7])] += 1
        for name, counter in tasks.items():
            print(f"{name}: {sum(counter.values())} tasks = {len(counter)} jobs sent + "
                  f"{sum(counter.values()) - len(counter)} re-sends")  # fmt: skip
        local = sum(job.provider == "local" for job in jobs)
        print(f"local remover: {local} jobs; sends in all {sum(sends.values())} for "
              f"{len(jobs)} jobs; sent again because: {dict(reasons.most_common(6))}")  # fmt: skip
        return violations

    def figures(self, jobs: list[Any]) -> None:
        ended = [job for job in jobs if job.finished_at]  # all of them, unless out of time
        sent = first_sent(ended)
        waiting = [
            (sent[job.pk] - job.created_at).total_seconds() for job in ended if job.pk in sent
        ]
        total = [(job.finished_at - job.created_at).total_seconds() for job in ended]
        makespan = (
            max(job.finished_at for job in ended) - min(job.created_at for job in jobs)
        ).total_seconds()
        print(f"makespan {makespan:.1f} s, throughput {len(ended) / makespan:.2f} jobs/s; "
              f"waiting {percentiles(waiting)}; total {percentiles(total)}")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=300, help="jobs in all, half files")
    parser.add_argument("--seed", type=int, default=23, help="draws the faults and payments")
    parser.add_argument("--minutes", type=float, default=10, help="the most the run may take")
    parser.add_argument("--clusters", type=int, default=3, help="worker clusters")
    parser.add_argument("--workers", type=int, default=2, help="processes per worker cluster")
    parser.add_argument("--people", type=int, default=9, help="people sending at once")
    parser.add_argument("--batch", type=int, default=5, help="files (and links) per batch")
    parser.add_argument("--swc-seconds", type=float, default=0.2, help="seconds an SWC run takes")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
