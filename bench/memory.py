"""Memory benchmark: a worker downloads a 500 MB result; how much does its memory grow?

    .venv/bin/python bench/memory.py [--megabytes 500]

Starts the Kie simulator serving generated video-sized results (`--result-bytes`) and one
`manage.py worker` with a single worker process, submits one job, and samples the resident memory of
every cluster process every 20 ms until the job ends. Prints each process's baseline and peak
and the largest growth (target: < 64 MB), and checks the stored file's size.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import free_port, wait_for_line, wait_for_port  # noqa: E402

MB = 1024 * 1024


def main() -> None:
    args = parse_args()
    size = args.megabytes * MB
    workdir = Path(tempfile.mkdtemp(prefix="unmark-memory-bench-"))
    sim_port = free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "local",
        "VAR_DIR": str(workdir),
        "KIE_SIMULATOR_PORT": str(sim_port),
        "Q_WORKERS": "1",
        "PUBLIC_BASE_URL": "",
        "LOG_LEVEL": "INFO",
    }
    env.pop("KIE_API_KEY", None)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.files.storage import default_storage
    from django.core.management import call_command

    from apps.accounts.models import Membership, User
    from apps.billing.welcome import onboard_new_user
    from apps.jobs import submission
    from apps.jobs.models import Job, JobState

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    manage = [sys.executable, str(ROOT / "manage.py")]
    simulator = subprocess.Popen(
        [
            *manage,
            "kie_simulator",
            "--port",
            str(sim_port),
            "--latency",
            "0.5",
            "0.5",
            "--result-bytes",
            str(size),
        ],
        env=env,
        stdout=(workdir / "simulator.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    worker_log = workdir / "worker.log"
    worker = subprocess.Popen(
        [*manage, "worker"], env=env, stdout=worker_log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(sim_port)
        wait_for_line(worker_log, "running.")
        time.sleep(1)  # let the cluster's processes settle before taking the baseline
        cluster = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
        baseline = {p.pid: p.memory_info().rss for p in cluster}
        peak = dict(baseline)

        user = User.objects.create_user("memory@example.com", "x")
        onboard_new_user(user=user)
        membership = Membership.objects.select_related("team", "user").get(user=user)
        [job] = submission.submit_jobs(
            membership=membership, links=["https://sora.chatgpt.com/p/s_" + "a" * 32]
        )
        started = time.monotonic()
        while Job.objects.filter(pk=job.pk).in_flight().exists():
            for process in cluster:
                with contextlib.suppress(psutil.NoSuchProcess):
                    peak[process.pid] = max(peak[process.pid], process.memory_info().rss)
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        job.refresh_from_db()
    finally:
        worker.terminate()
        simulator.terminate()
        worker.wait(timeout=30)
        simulator.wait(timeout=30)

    print(f"result: {args.megabytes} MB from the simulator; job {job.state} in {elapsed:.1f} s")
    if job.state != JobState.SUCCEEDED:
        raise SystemExit(f"the job did not succeed: {job.failure_message}")
    stored = default_storage.size(str(job.result_file.name))
    print(f"stored file: {stored / MB:.1f} MB, size matches: {stored == size}")
    for pid in baseline:
        before, top = baseline[pid] / MB, peak[pid] / MB
        print(
            f"  process {pid}: baseline {before:.1f} MB  peak {top:.1f} MB  "
            f"growth {top - before:.1f} MB"
        )
    growth = max(peak[pid] - baseline[pid] for pid in baseline)
    print(f"largest peak RSS growth of a cluster process: {growth / MB:.1f} MB (target < 64 MB)")
    default_storage.delete(str(job.result_file.name))
    print(f"data and logs: {workdir}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=500)
    return parser.parse_args()


if __name__ == "__main__":
    main()
