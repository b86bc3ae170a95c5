"""Sending a delivery: claim it, sign it, post it, record what came back.

Runs in a worker (see `apps.webhooks.tasks`). A delivery is sent by
one worker at a time: it is claimed with a conditional UPDATE that takes a lease, and the
outcome is recorded only by the lease holder. No transaction is open while the receiver is
being asked, and the whole exchange — connecting, TLS, sending, the answer — must finish
within WEBHOOK_TIMEOUT_SECONDS of wall-clock time (a receiver dripping one byte at a time
cannot hold a worker longer), reading at most RESPONSE_READ_BYTES of the answer.

Only a 2xx answer counts. Anything else is retried on `RETRY_SCHEDULE` (each retry a task due
at its time), with jitter so the messages of one outage do not all come back at once; 410 Gone
turns the endpoint off at once, and so do WEBHOOK_DISABLE_AFTER_DAYS of failing — then its
team's owners and admins are told.
"""

import functools
import logging
import random
import secrets
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpcore
import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook

from apps import outbound
from apps.accounts.emails import send_template, site_url
from apps.accounts.models import MANAGER_ROLES, TeamEventKind
from apps.accounts.services import record_team_event
from apps.telemetry import webhook_delivered
from apps.webhooks.models import (
    HANDED_OUT,
    RETRY_SCHEDULE,
    Delivery,
    DeliveryState,
    Endpoint,
)
from apps.webhooks.services import UrlRefused, deliver_at, vet_url

logger = logging.getLogger("unmark.webhooks")

# Enough of an answer to show people what their receiver said; the rest is never read.
RESPONSE_READ_BYTES = 64 * 1024
EXCERPT_CHARS = 1000
# A lease outlasts the longest exchange, so it only lapses when its worker died.
LEASE_MARGIN_SECONDS = 30
JITTER = 0.1  # each wait is stretched or shrunk by up to a tenth
DUE_BATCH = 500
# How long a delivery handed to the queue waits for a worker before the sweep hands it out again.
HAND_OUT_MINUTES = 10


def hand_out_due(*, now: datetime | None = None) -> list[int]:
    """Deliveries waiting for an attempt (retries, and any whose first task was lost), marked
    as handed to the queue so the next sweeps do not hand them out again while the workers
    are busy — only once that lease runs out (the task was lost)."""
    now = now or timezone.now()
    due = Delivery.objects.due(now).order_by("next_attempt_at", "id")
    ids = list(due.values_list("id", flat=True)[:DUE_BATCH])
    Delivery.objects.due(now).filter(pk__in=ids).update(
        lease_token=HANDED_OUT, lease_until=now + timedelta(minutes=HAND_OUT_MINUTES)
    )
    return ids


def forget_old_deliveries(*, now: datetime | None = None) -> int:
    """Deletes finished deliveries older than WEBHOOK_LOG_RETENTION_DAYS (the log is for
    seeing what happened lately, not an archive). Returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_LOG_RETENTION_DAYS)
    old = Delivery.objects.filter(created_at__lt=cutoff).exclude(state=DeliveryState.PENDING)
    deleted, _ = old.delete()
    return deleted


def deliver(*, delivery_id: int) -> str | None:
    """Makes one attempt at a due delivery; returns its state afterwards, or None when it was
    not due or another worker holds it (also when it took the delivery over mid-attempt)."""
    now = timezone.now()
    token = secrets.token_hex(8)
    lease = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)
    claimed = (
        Delivery.objects.claimable(now)
        .filter(pk=delivery_id)
        .update(
            lease_token=token,
            lease_until=now + lease,
            attempts=F("attempts") + 1,
            last_attempt_at=now,
        )
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("endpoint__team").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        if not _record(
            delivery, token, state=DeliveryState.FAILED, error="Not sent: the endpoint is off."
        ):
            return None
        webhook_delivered("endpoint_off")
        return DeliveryState.FAILED
    try:
        address = vet_url(endpoint.url)
    except UrlRefused as refused:
        answer = Answer(error=f"Refused: {refused}")
    else:
        answer = post(
            endpoint.url, address=address, headers=signed_headers(delivery), body=delivery.body()
        )
    if answer.ok:
        if not _record(delivery, token, state=DeliveryState.SUCCEEDED, answer=answer):
            _lease_lost(delivery, answer)
            return None
        # Conditional, so the usual case (it was not failing) writes nothing.
        Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(
            failing_since=None
        )
        logger.info("webhook delivered", extra=_log(delivery, answer))
        webhook_delivered("delivered")
        return DeliveryState.SUCCEEDED
    return _failed(delivery, token, answer)


@dataclass(frozen=True)
class Answer:
    status: int | None = None
    excerpt: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signed_headers(delivery: Delivery, *, now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers: the message id, the time of this attempt and one `v1`
    signature per secret in use (two during a rotation's overlap)."""
    now = now or datetime.now(UTC)
    body = delivery.body()
    signatures = [
        Webhook(secret).sign(delivery.message_id, now, body)
        for secret in delivery.endpoint.signing_secrets(now)
    ]
    return {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": f"{settings.PRODUCT_NAME}-Webhooks/1",
    }


def post(url: str, *, address: str, headers: dict[str, str], body: str) -> Answer:
    """POSTs `body` to `url`, connecting to the vetted `address` only, within the deadline."""
    seconds = settings.WEBHOOK_TIMEOUT_SECONDS
    deadline = time.monotonic() + seconds
    target, host_header, extensions = outbound.pinned(url, address)
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), float(seconds))
    try:
        with (
            httpcore.ConnectionPool(
                ssl_context=_ssl_context(), network_backend=_DeadlineBackend(deadline)
            ) as pool,
            pool.stream(
                "POST",
                target,
                headers=list({**headers, **host_header}.items()),
                content=body.encode(),
                extensions={**extensions, "timeout": timeouts},
            ) as response,
        ):
            return Answer(status=response.status, excerpt=_read_excerpt(response, seconds))
    except httpcore.TimeoutException:
        return Answer(error=f"No answer within {seconds} s.")
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        return Answer(error=f"The connection failed ({_reason(exc)}).")


def _read_excerpt(response: httpcore.Response, seconds: int) -> str:
    """The start of the answer, read up to RESPONSE_READ_BYTES or the deadline: a status line
    that came in time counts even if the body that follows never ends."""
    received = bytearray()
    try:
        for chunk in response.iter_stream():
            received += chunk
            if len(received) >= RESPONSE_READ_BYTES:
                break
    except httpcore.TimeoutException:
        received += f"… (cut off after {seconds} s)".encode()
    except (httpcore.NetworkError, httpcore.ProtocolError):
        pass  # the status already came; a body cut short changes nothing
    return bytes(received[:RESPONSE_READ_BYTES]).decode(errors="replace")[:EXCERPT_CHARS]


def _reason(exc: Exception) -> str:
    cause = exc.__context__ or exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return "its TLS certificate is not valid for this name"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    return type(exc).__name__


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs more CPU than a small post: once per process.
    return httpx.create_ssl_context()


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than what is left of the
    whole exchange's time, however the receiver spaces its bytes."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("the delivery's time ran out")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(
            ssl_context, server_hostname, self._left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: float) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the delivery's time ran out")
        stream = self._backend.connect_tcp(
            host,
            port,
            left if timeout is None else min(timeout, left),
            local_address,
            socket_options,
        )
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# --- Recording the outcome -------------------------------------------------------------------


def _record(
    delivery: Delivery,
    token: str,
    *,
    state: DeliveryState,
    answer: Answer | None = None,
    error: str = "",
    next_attempt_at: datetime | None = None,
) -> bool:
    """Writes the attempt's outcome, if this worker still holds the lease."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "state": state,
        "next_attempt_at": next_attempt_at,
        "lease_token": "",
        "lease_until": None,
        "last_status": answer.status if answer else None,
        "last_error": (answer.error if answer else error)[:300],
        "response_excerpt": answer.excerpt if answer else "",
    }
    if state == DeliveryState.SUCCEEDED:
        fields["delivered_at"] = now
    return bool(Delivery.objects.filter(pk=delivery.pk, lease_token=token).update(**fields))


def _lease_lost(delivery: Delivery, answer: Answer) -> None:
    # Our lease ran out while the receiver answered and another worker took the delivery: its
    # outcome is the one that counts, so this attempt touches no metric and no endpoint.
    logger.warning("webhook attempt outlived its lease", extra=_log(delivery, answer))


def _failed(delivery: Delivery, token: str, answer: Answer) -> str | None:
    now = timezone.now()
    endpoint = delivery.endpoint
    if delivery.attempts < len(RETRY_SCHEDULE):
        wait = RETRY_SCHEDULE[delivery.attempts].total_seconds()
        wait *= random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 — jitter, not security
        state, next_at = DeliveryState.PENDING, now + timedelta(seconds=wait)
    else:
        state, next_at = DeliveryState.FAILED, None
    if not _record(delivery, token, state=state, answer=answer, next_attempt_at=next_at):
        _lease_lost(delivery, answer)
        return None
    if next_at is not None:
        deliver_at(delivery.pk, next_at)
    logger.warning("webhook attempt failed", extra=_log(delivery, answer))
    webhook_delivered("retrying" if state == DeliveryState.PENDING else "gave_up")
    Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    if answer.status == 410:
        disable(endpoint=endpoint, reason="The receiver answered 410 Gone: it asked us to stop.")
    else:
        since = now - timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS)
        if Endpoint.objects.filter(pk=endpoint.pk, failing_since__lte=since).exists():
            days = settings.WEBHOOK_DISABLE_AFTER_DAYS
            disable(endpoint=endpoint, reason=f"Every delivery has failed for {days} days.")
    # A disabled endpoint's messages are not retried: `disable` ended them, this one included.
    return str(Delivery.objects.filter(pk=delivery.pk).values_list("state", flat=True).get())


def disable(*, endpoint: Endpoint, reason: str) -> bool:
    """Turns the endpoint off, ends its waiting messages and emails the team's owners and
    admins. One conditional UPDATE decides, so they hear of it once. True if it did."""
    now = timezone.now()
    with transaction.atomic():
        if not Endpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
            enabled=False, disabled_reason=reason[:300], disabled_at=now
        ):
            return False
        Delivery.objects.filter(endpoint=endpoint, state=DeliveryState.PENDING).update(
            state=DeliveryState.FAILED, next_attempt_at=None
        )
        record_team_event(
            team=endpoint.team,
            kind=TeamEventKind.WEBHOOK_DISABLED,
            detail=f"{endpoint.url}: {reason}",
        )
    team = endpoint.team
    recipients = list(
        team.memberships.filter(role__in=MANAGER_ROLES).values_list("user__email", flat=True)
    )
    if recipients and not team.is_archived:
        send_template(
            "webhooks/email/endpoint_disabled",
            {
                "team": team,
                "endpoint": endpoint,
                "reason": reason,
                "link": site_url() + endpoint.get_absolute_url(),
                "webhooks_link": site_url() + reverse("webhooks:endpoints", args=[team.public_id]),
            },
            recipients,
        )
    logger.warning("webhook endpoint disabled", extra={"endpoint": endpoint.pk, "team": team.pk})
    endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
    return True


def _log(delivery: Delivery, answer: Answer) -> dict[str, object]:
    return {
        "delivery": delivery.pk,
        "endpoint": delivery.endpoint_id,
        "team": delivery.endpoint.team_id,
        "attempt": delivery.attempts,
        "status": answer.status,
        "error": answer.error,
    }
