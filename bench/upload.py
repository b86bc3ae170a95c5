"""Upload benchmark: one 500 MB video through gunicorn, against a raw loopback copy.

    .venv/bin/python bench/upload.py [--megabytes 500]

Starts gunicorn (one worker process with 4 threads, so its memory is the one measured) on a
fresh database, signs a person in, and sends a real, valid MP4 of the given size — a small
Sora-like clip followed by a large `free` box, which players skip — to the upload endpoint the
dashboard's script uses, streamed from disk. The server receives it to a temporary file while
hashing it, probes it with PyAV, makes its poster and keeps it. Prints:
- the web worker's RSS growth during the upload, sampled every 20 ms (target < 64 MB);
- upload throughput, and the same bytes copied over a loopback socket into a file on the same
  disk in the same run, and their ratio (target ≥ 0.5).
DATABASE_URL / REDIS_URL in the environment are used as given.
"""

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.clips import make_clip  # noqa: E402
from tests.live import free_port, gunicorn_argv, wait_for_port  # noqa: E402

CHUNK = 1024 * 1024


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--megabytes", type=int, default=500)
    options = args.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="unmark-upload-bench-"))
    port = free_port()
    os.environ.update(
        {"DJANGO_ENV": "local", "VAR_DIR": str(workdir), "LOG_LEVEL": "WARNING", "PORT": str(port)}
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    session_cookie, team_path = sign_in()
    video = big_video(workdir, options.megabytes * 1_000_000)
    size = video.stat().st_size

    server = subprocess.Popen(
        gunicorn_argv(port, workers=1, threads=4, timeout=300),
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=(workdir / "web.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, cookies={"sessionid": session_cookie}, timeout=300)
        client.get(
            f"{team_path}/dashboard/"
        ).raise_for_status()  # warms the worker up; sets the CSRF cookie
        worker = worker_pid(server.pid)
        baseline = rss_bytes(worker)
        sampler = PeakSampler(worker)
        sampler.start()
        started = time.perf_counter()
        sent_at: list[float] = []
        answer = upload(client, f"{team_path}/uploads/", video, sent_at)
        answered = time.perf_counter()
        upload_seconds = answered - started
        sampler.stop()
        if answer.status_code != 201:
            raise SystemExit(f"the upload was refused ({answer.status_code}): {answer.text}")
        raw_seconds = loopback_copy(video, workdir)
    finally:
        server.terminate()
        server.wait(timeout=20)
        # Half a gigabyte twice over: the videos go, the database and log stay.
        video.unlink()
        shutil.rmtree(workdir / "media", ignore_errors=True)

    growth = (sampler.peak - baseline) / (1024 * 1024)
    upload_rate = size / upload_seconds / 1e6
    raw_rate = size / raw_seconds / 1e6
    print(f"upload of {size / 1e6:,.0f} MB through gunicorn (1 worker x 4 threads)")
    print(f"web worker RSS growth: {growth:.1f} MB (baseline {baseline / 2**20:.0f} MB)")
    print(
        f"upload throughput: {upload_rate:,.0f} MB/s ({upload_seconds:.2f} s, of which "
        f"{answered - sent_at[0]:.2f} s after the last byte: probe, poster, keeping it)"
    )
    print(f"raw loopback copy: {raw_rate:,.0f} MB/s ({raw_seconds:.2f} s)")
    print(f"upload / raw: {upload_rate / raw_rate:.2f}")
    print(f"database and log: {workdir}")


def sign_in() -> tuple[str, str]:
    """A person with their personal team; returns a session cookie and the team's address."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from apps.accounts.models import User
    from apps.billing.welcome import onboard_new_user

    user = User.objects.create_user("bench@example.com", "bench-password-123")
    team = onboard_new_user(user=user)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    return session.session_key, f"/t/{team.public_id}"


def big_video(workdir: Path, size: int) -> Path:
    """A valid clip padded to `size` bytes with one `free` box (64-bit size) at its end."""
    path = make_clip(workdir / "big.mp4", seconds=10, width=288, height=512)
    padding = size - path.stat().st_size - 16
    with path.open("ab") as out:
        out.write(struct.pack(">I4sQ", 1, b"free", padding + 16))
        block = b"\0" * CHUNK
        for _ in range(padding // CHUNK):
            out.write(block)
        out.write(b"\0" * (padding % CHUNK))
    return path


def upload(client: httpx.Client, path: str, video: Path, sent_at: list[float]) -> httpx.Response:
    """POSTs the file as the page's script does, streamed from disk in a multipart body;
    notes in `sent_at` when the last byte went out."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with video.open("rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk
        yield tail
        sent_at.append(time.perf_counter())

    return client.post(
        path,
        content=body(),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + video.stat().st_size + len(tail)),
            "X-CSRFToken": client.cookies["csrftoken"],
            "Referer": f"{client.base_url}{path}",
        },
    )


def loopback_copy(video: Path, workdir: Path) -> float:
    """The same bytes, read and sent in the same 1 MB chunks as the upload, over a loopback TCP
    socket into a file on the same disk: what the machine can do without HTTP or Django."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    target = workdir / "loopback.copy"

    def receive() -> None:
        connection, _ = listener.accept()
        with connection, target.open("wb") as out:
            while chunk := connection.recv(CHUNK):
                out.write(chunk)

    receiver = threading.Thread(target=receive)
    receiver.start()
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sender, video.open("rb") as source:
        while chunk := source.read(CHUNK):
            sender.sendall(chunk)
    receiver.join()
    seconds = time.perf_counter() - started
    listener.close()
    target.unlink()
    return seconds


def worker_pid(master: int) -> int:
    """gunicorn's one worker process (the master only supervises)."""
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise SystemExit("gunicorn started no worker")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no RSS for process {pid}")


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


if __name__ == "__main__":
    main()
