"""Operations page benchmark: the staff page, its CSV and /metrics over 100,000 jobs.

    DATABASE_URL=postgres://unmark@127.0.0.1:5432/unmark_ops .venv/bin/python bench/ops.py
    .venv/bin/python bench/ops.py --jobs 20000 --requests 10      # SQLite, smaller

Makes a fresh database next to the one DATABASE_URL names (`<name>_opsbench`, dropped at the
end; a temporary SQLite file without DATABASE_URL), migrates it and fills it with a realistic
history: 400 teams, N jobs over 90 days (mostly uploads on the SWC pool, some Kie links and
Replicate files; done, expired, failed with a handful of reasons, canceled, and the last
hour's still in flight), three timeline events and a hold plus its capture or release per
job, 2,000 paid top-ups with a few refunds, 6 SWC servers, an open alert. It rolls the closed
days up as a worker's first refresh would (the time it takes is printed, and that of a
refresh with nothing to do), then asks, through
Django's test client as a signed-in staff member, for the page (the last 7 days by day, the
last 90 days, and today by hour), the CSV export and a /metrics scrape, and prints the
response times (p50, p95, max over `--requests` after two warm-ups). Goals on PostgreSQL: the
page and the CSV, 90 days included, p95 ≤ 300 ms; /metrics ≤ 20 ms.
"""

import argparse
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAYS = 90
TEAMS = 400
TOPUPS = 2_000
BATCH = 5_000
STATES = [  # (state, share) of jobs older than an hour
    ("succeeded", 0.18),
    ("expired", 0.62),
    ("failed", 0.12),
    ("canceled", 0.05),
    ("queued", 0.03),
]
PROVIDERS = [("swc", 0.7), ("kie", 0.2), ("replicate", 0.1)]
FAILURES = [
    ("error", "SWC reported ERROR (it never gives a reason)"),
    ("timeout", "Not finished within 15 minutes: refunded."),
    ("fail", "Kie could not process the video."),
    ("download", "The result could not be saved."),
    ("staff", "Stopped by our staff. Nothing was charged."),
]
SERVERS = [f"http://10.0.0.{n}:5344" for n in range(1, 7)]
STAFF_EMAIL = "olive@unmark.example"


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="unmark-ops-bench-"))
    os.environ.update(
        {
            "DJANGO_ENV": "local",
            "VAR_DIR": str(workdir),
            "LOG_LEVEL": "WARNING",
            "METRICS_TOKEN": "bench-metrics-token",
            "SWC_SERVERS": ",".join(SERVERS),
        }
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    from apps.accounts.models import User
    from apps.jobs.models import Job

    settings_dict = connection.settings_dict
    name = settings_dict["NAME"]
    bench_name = (
        f"{name}_opsbench" if connection.vendor == "postgresql" else str(workdir / "bench.sqlite3")
    )
    if args.reuse:
        # A database kept by an earlier --keep run: measure again without seeding.
        connection.close()
        settings_dict["NAME"] = bench_name
        staff = User.objects.get(email=STAFF_EMAIL)
        print(f"reusing {bench_name}: {Job.objects.count():,} jobs")
        roll_up()
        measure(staff, args.requests)
        return
    settings_dict["TEST"]["NAME"] = bench_name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        started = time.perf_counter()
        staff = seed(args.jobs, random.Random(args.seed))
        print(
            f"{args.jobs:,} jobs seeded on {connection.vendor} "
            f"({connection.settings_dict['NAME']}) in {time.perf_counter() - started:.0f} s"
        )
        roll_up()
        measure(staff, args.requests)
    finally:
        if args.keep:
            print(f"kept {bench_name} (measure again with --reuse)")
        else:
            connection.creation.destroy_test_db(name, verbosity=0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure a kept database again")
    return parser.parse_args()


def pick(rng: random.Random, choices: list[tuple[str, float]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def seed(count: int, rng: random.Random):
    from django.db import connection

    from apps.accounts.models import Team, User
    from apps.billing.models import EntryKind, LedgerEntry, TopUp, TopUpStatus, Wallet
    from apps.jobs.models import Job, JobEvent
    from apps.removal.models import ProviderAlert, SwcServer

    # The history is written as it would have happened, dates included: the fields that
    # stamp "now" on insert are told not to, for the length of the seeding.
    stamped = [
        model._meta.get_field("created_at") for model in (Team, Job, JobEvent, LedgerEntry, TopUp)
    ]
    for field in stamped:
        field.auto_now_add = False
    now = datetime.now(UTC)
    start = now - timedelta(days=DAYS)

    def moment() -> datetime:
        # Busier in the (European) afternoon and evening, as people are.
        day = start + timedelta(days=rng.randrange(DAYS))
        hour = min(23, max(0, int(rng.gauss(16, 4))))
        return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))

    teams = Team.objects.bulk_create(
        Team(name=f"Team {n}", is_personal=n % 3 != 0, created_at=start) for n in range(TEAMS)
    )
    Wallet.objects.bulk_create(
        Wallet(team=team, balance=rng.randrange(0, 20_000), held=0) for team in teams
    )
    staff = User.objects.create_user(email=STAFF_EMAIL, password=None, is_staff=True)

    jobs: list[Job] = []
    for n in range(count):
        recent = n < count * 0.01  # the last hour's: still moving
        created = now - timedelta(seconds=rng.uniform(0, 3600)) if recent else moment()
        provider = pick(rng, PROVIDERS)
        state = (
            rng.choice(["queued", "submitted", "processing", "downloading"])
            if recent
            else pick(rng, STATES)
        )
        waited = rng.lognormvariate(1.5, 1.0)  # seconds in line, a long tail
        worked = rng.lognormvariate(3.5, 0.5) if provider != "kie" else rng.lognormvariate(4, 0.6)
        sent = state not in ("queued", "canceled")
        ended = state in ("succeeded", "expired", "failed", "canceled")
        code, message = rng.choice(FAILURES) if state == "failed" else ("", "")
        priced = sent and ended and rng.random() < 0.9  # a few providers did not say
        jobs.append(
            Job(
                team=teams[rng.randrange(TEAMS)],
                provider=provider,
                input_kind="link" if provider == "kie" else "file",
                state=state,
                credits=10,
                task_id=uuid.uuid4().hex if sent else "",
                provider_server=rng.choice(SERVERS) if provider == "swc" and sent else "",
                provider_cost_micros=rng.randrange(5_000, 40_000) if priced else None,
                failure_code=code,
                failure_message=message,
                created_at=created,
                updated_at=created,
                submitted_at=created + timedelta(seconds=waited) if sent else None,
                finished_at=(
                    created + timedelta(seconds=waited + worked if sent else waited)
                    if ended
                    else None
                ),
            )
        )
    # Rows arrive in the order they were created, as they do in production (so a range of
    # days sits in neighbouring pages of the table).
    jobs.sort(key=lambda job: job.created_at)
    for i in range(0, len(jobs), BATCH):
        Job.objects.bulk_create(jobs[i : i + BATCH])

    events: list[JobEvent] = []
    entries: list[LedgerEntry] = []
    for job in jobs:
        path = ["queued"]
        if job.submitted_at:
            path += ["submitted", "processing"]
        if job.finished_at:
            path.append("succeeded" if job.state == "expired" else job.state)
        for step, (before, after) in enumerate(itertools.pairwise(path)):
            at = (job.submitted_at if step < 2 else job.finished_at) or job.created_at
            events.append(JobEvent(job=job, from_state=before, to_state=after, created_at=at))
        entries.append(
            LedgerEntry(team=job.team, kind=EntryKind.HOLD, amount=10, key=f"hold:job:{job.pk}",
                        job=job, created_at=job.created_at)
        )  # fmt: skip
        if job.finished_at:
            kind = EntryKind.CAPTURE if job.state in ("succeeded", "expired") else EntryKind.RELEASE
            entries.append(
                LedgerEntry(team=job.team, kind=kind, amount=-10, key=f"settle:job:{job.pk}",
                            job=job, created_at=job.finished_at)
            )  # fmt: skip
    for i in range(0, len(events), BATCH):
        JobEvent.objects.bulk_create(events[i : i + BATCH])

    topups = []
    for n in range(TOPUPS):
        paid = moment()
        credits = rng.choice([1000, 5000, 20000])
        topups.append(
            TopUp(team=teams[rng.randrange(TEAMS)], credits=credits, amount_cents=credits // 2,
                  status=TopUpStatus.PAID, checkout_session_id=f"cs_bench_{n}", created_at=paid,
                  paid_at=paid)
        )  # fmt: skip
    TopUp.objects.bulk_create(topups)
    for topup in topups:
        entries.append(
            LedgerEntry(team=topup.team, kind=EntryKind.TOPUP, amount=topup.credits,
                        key=f"topup:{topup.checkout_session_id}", topup=topup,
                        created_at=topup.created_at)
        )  # fmt: skip
        if rng.random() < 0.02:
            entries.append(
                LedgerEntry(team=topup.team, kind=EntryKind.CLAWBACK, amount=-topup.credits // 2,
                            key=f"clawback:re_{topup.pk}", topup=topup,
                            created_at=topup.created_at + timedelta(days=2))
            )  # fmt: skip
    for i in range(0, len(entries), BATCH):
        LedgerEntry.objects.bulk_create(entries[i : i + BATCH])

    SwcServer.objects.bulk_create(SwcServer(url=url, healthy=url != SERVERS[-1]) for url in SERVERS)
    ProviderAlert.objects.create(provider="kie", kind="paused", message="Kie paused Sora.")
    for field in stamped:
        field.auto_now_add = True
    if connection.vendor == "postgresql":
        # What autovacuum does to a table this size within minutes: statistics for the
        # planner, and the visibility map that index-only scans need.
        with connection.cursor() as cursor:
            for table in ("jobs_job", "jobs_jobevent", "billing_ledgerentry", "billing_topup"):
                cursor.execute(f"VACUUM ANALYZE {table}")
    return staff


def roll_up() -> None:
    """What the workers' refresh does: the first time every closed day, then only the days
    whose jobs changed (none here)."""
    from apps.ops import rollups

    for run in ("first", "next"):
        started = time.perf_counter()
        days = rollups.refresh()
        print(f"roll-up refresh ({run}): {len(days)} days in {time.perf_counter() - started:.2f} s")


def timed(client, path: str, requests: int, **extra: str) -> list[float]:
    for _ in range(2):
        assert client.get(path, **extra).status_code == 200, path
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, **extra)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, path
    return times


def measure(staff, requests: int) -> None:
    from django.test import Client

    client = Client()
    client.force_login(staff)
    today = datetime.now(UTC).date()
    cases = [
        ("ops page, last 7 days by day", "/ops/", {}),
        (
            "ops page, last 90 days by day",
            f"/ops/?first={today - timedelta(days=89)}&last={today}",
            {},
        ),
        ("ops page, today by hour", f"/ops/?first={today}&last={today}", {}),
        ("CSV export, last 7 days", "/ops/figures.csv", {}),
        (
            "CSV export, last 90 days",
            f"/ops/figures.csv?first={today - timedelta(days=89)}&last={today}",
            {},
        ),
        ("/metrics scrape", "/metrics", {"HTTP_AUTHORIZATION": "Bearer bench-metrics-token"}),
    ]
    print(f"{requests} requests each after 2 warm-ups, Django test client, one at a time (ms):")
    for label, path, extra in cases:
        times = sorted(timed(client, path, requests, **extra))
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(
            f"  {label:<32} p50 {statistics.median(times):7.1f}  p95 {p95:7.1f}  "
            f"max {times[-1]:7.1f}"
        )


if __name__ == "__main__":
    main()
