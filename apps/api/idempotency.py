"""`Idempotency-Key` on POSTs, with Stripe's semantics.

- The same key with the same request (method, path, body) returns the first answer again,
  marked `Idempotent-Replayed: true`, and does nothing else.
- The same key with another request is refused (422, `idempotency-key-reused`).
- While the first request with a key runs, others with it are told to retry (409,
  `idempotency-key-in-progress`, `Retry-After: 1`): a row inserted before the work starts,
  unique per team and key, lets exactly one in (on PostgreSQL a concurrent insert waits on the
  unique index, then fails).
- The work and the saving of its answer are one transaction: what a request did is kept only
  with its answer, so a key whose first request died is run again without doubling anything.
- Answers are kept `API_IDEMPOTENCY_HOURS` (≥ 24 h), then forgotten by the worker's schedule.
  Server errors and rate-limit refusals are not kept: the request may be tried again.
"""

import hashlib
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils import timezone

from apps.api.models import IdempotentRequest
from apps.api.problems import Problem
from apps.jobs.uploads import HashedUploadedFile, atomic_with_files

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# A first request still "in progress" after this long died with its process: its key is freed.
ABANDONED_AFTER = timedelta(minutes=5)


def fingerprint(request: HttpRequest) -> str:
    """What makes two requests "the same": method, path and body. A multipart body is never
    read into memory: its fields and its files' SHA-256s (hashed as they streamed to disk)
    stand for it."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    if request.content_type == "multipart/form-data":
        for name, values in sorted(request.POST.lists()):
            digest.update(f"field {name}={values!r}\n".encode())
        for name, files in sorted(request.FILES.lists()):
            for uploaded in files:
                sha = uploaded.sha256 if isinstance(uploaded, HashedUploadedFile) else ""
                digest.update(f"file {name}={uploaded.name}:{uploaded.size}:{sha}\n".encode())
    else:
        digest.update(request.body)
    return digest.hexdigest()


def respond_once(
    request: HttpRequest, *, team_id: int, run: Callable[[], HttpResponseBase]
) -> HttpResponseBase:
    """Runs `run` unless this key already answered; see the module's rules."""
    key = request.headers.get(HEADER)
    if key is None:
        return run()
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            f"An Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable characters.",
        )
    record = _claim(team_id=team_id, key=key, fingerprint=fingerprint(request))
    if isinstance(record, HttpResponse):
        return record
    try:
        # The work and its stored answer commit together: a process dying in between rolls
        # back the jobs and holds with the answer, so the key, once abandoned, runs once more
        # and not twice. (The claim above is committed on its own: it is what lets one in.)
        # Files it stored go with a rolled-back transaction too (`atomic_with_files`).
        with atomic_with_files():
            response = run()
            kept = response.status_code < 500 and response.status_code != 429
            if kept:
                record.status = response.status_code
                record.content_type = response.get("Content-Type", "")
                record.body = response.content.decode()  # type: ignore[attr-defined]  # never streamed
                record.save(update_fields=["status", "content_type", "body"])
            else:
                # Not kept, so the request may be tried again: nothing of it may stay either.
                transaction.set_rollback(True)
    except BaseException:
        record.delete()
        raise
    if not kept:
        record.delete()
    return response


def _claim(*, team_id: int, key: str, fingerprint: str) -> IdempotentRequest | HttpResponse:
    """Inserts the key's row; or, for a key already used, returns its first answer or raises
    the problem with it."""
    for _ in range(2):
        try:
            with transaction.atomic():
                return IdempotentRequest.objects.create(
                    team_id=team_id, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            earlier = IdempotentRequest.objects.filter(team_id=team_id, key=key).first()
        if earlier is None:
            continue  # forgotten in between: try once more
        if earlier.fingerprint != fingerprint:
            raise Problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "This Idempotency-Key was already used for a different request. Use a new key "
                "for a new request.",
            )
        if earlier.status is None:
            if earlier.created_at < timezone.now() - ABANDONED_AFTER:
                IdempotentRequest.objects.filter(pk=earlier.pk, status__isnull=True).delete()
                continue
            raise _in_progress()
        return earlier.replay()
    raise _in_progress()


def _in_progress() -> Problem:
    return Problem(
        409,
        "idempotency-key-in-progress",
        "Request in progress",
        "A request with this Idempotency-Key is still being processed. Try again in a moment "
        "to get its answer.",
        headers={"Retry-After": "1"},
    )


def forget_old() -> int:
    """Deletes answers older than the retention period; returns how many."""
    cutoff = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()
    return deleted
