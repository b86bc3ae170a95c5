"""Webhook benchmark: what announcing costs a job's move, and how fast one worker delivers.

    .venv/bin/python bench/webhooks.py [--deliveries 300] [--endpoints 3]

On a fresh database with one team and N endpoints (a receiver on loopback, let through by
WEBHOOK_ALLOW_LOOPBACK as in tests), measures:
- `emit` inside a transaction, as a job's final move calls it (one message per endpoint);
- `deliver` one after another in this process, as one worker would: claim, vet the address,
  sign, post, record — deliveries per second and the p50 / p95 of one delivery.
DATABASE_URL in the environment is used as given.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--endpoints", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="unmark-webhooks-bench-"))
    os.environ.update(
        {
            "DJANGO_ENV": "local",
            "VAR_DIR": str(workdir),
            "LOG_LEVEL": "WARNING",
            "WEBHOOK_ALLOW_LOOPBACK": "1",
        }
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from apps.accounts.models import User
    from apps.billing.welcome import onboard_new_user
    from apps.webhooks import sending, services
    from apps.webhooks.models import Endpoint, EventType

    call_command("migrate", verbosity=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    team = onboard_new_user(user=User.objects.create_user("bench@example.com", "bench-pw-123"))
    for _ in range(args.endpoints):
        Endpoint.objects.create(team=team, url=url, events=list(EventType.values))
    payload = {"job": {"id": "0" * 32, "state": "succeeded", "credits": 10}}

    emits: list[float] = []
    ids: list[int] = []
    while len(ids) < args.deliveries:
        with transaction.atomic():  # the move's own transaction: its commit is not counted
            started = time.perf_counter()
            ids += services.emit(
                team_id=team.pk, event_type=EventType.JOB_SUCCEEDED, payload=payload
            )
            emits.append(time.perf_counter() - started)

    times: list[float] = []
    started_all = time.perf_counter()
    for delivery_id in ids:
        started = time.perf_counter()
        assert sending.deliver(delivery_id=delivery_id) == "succeeded"
        times.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - started_all
    server.shutdown()

    def ms(values: list[float], q: int) -> float:
        return 1000 * statistics.quantiles(values, n=100)[q - 1]

    print(
        f"emit ({args.endpoints} endpoints): p50 {ms(emits, 50):.2f} ms, p95 {ms(emits, 95):.2f} ms"
    )
    print(
        f"deliver: {len(ids)} in {elapsed:.2f} s = {len(ids) / elapsed:.0f}/s per worker; "
        f"p50 {ms(times, 50):.2f} ms, p95 {ms(times, 95):.2f} ms"
    )


if __name__ == "__main__":
    main()
