"""Kie's create limit as the dispatcher's schedule: claims of starts in a sliding log in the
shared cache, never more than 20 in any 10 seconds, and the full rate over a long run."""

import os
import threading

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from apps.removal.ratelimit import (
    MARGIN_SECONDS,
    claim_starts,
    mark_sent,
    seconds_until_free,
)

ALICE_KEY = "alice-kie-key"
BOB_KEY = "bob-kie-key"
START = 1_800_000_000.0
SPAN = 10 + MARGIN_SECONDS


def test_twenty_starts_are_claimed_and_the_next_waits_for_the_oldest_to_leave(time_machine):
    time_machine.move_to(START, tick=False)

    assert claim_starts(ALICE_KEY, 25)[0] == 20
    assert claim_starts(ALICE_KEY, 1)[0] == 0
    assert seconds_until_free(ALICE_KEY) == pytest.approx(SPAN)

    time_machine.move_to(START + SPAN - 0.01, tick=False)
    assert claim_starts(ALICE_KEY, 1)[0] == 0
    time_machine.move_to(START + SPAN + 0.01, tick=False)
    assert seconds_until_free(ALICE_KEY) == 0
    assert claim_starts(ALICE_KEY, 30)[0] == 20


def test_starts_free_up_one_by_one_as_their_claims_age(time_machine):
    time_machine.move_to(START, tick=False)
    claim_starts(ALICE_KEY, 10)[0]
    time_machine.move_to(START + 5, tick=False)
    claim_starts(ALICE_KEY, 10)[0]

    time_machine.move_to(START + 9, tick=False)
    assert seconds_until_free(ALICE_KEY) == pytest.approx(SPAN - 9)
    time_machine.move_to(START + SPAN + 0.1, tick=False)
    assert claim_starts(ALICE_KEY, 20)[0] == 10
    assert seconds_until_free(ALICE_KEY) == pytest.approx(5 - 0.1)


def test_a_long_burst_runs_at_the_full_rate_and_no_ten_seconds_see_more_than_twenty(
    time_machine,
):
    # The dispatcher wakes when the next start frees, as the poller does.
    claimed: list[float] = []
    now = START
    while now < START + 300:
        time_machine.move_to(now, tick=False)
        claimed += [now] * claim_starts(ALICE_KEY, 50)[0]
        now += max(0.001, seconds_until_free(ALICE_KEY))

    busiest = max(sum(1 for t in claimed if a <= t < a + 10) for a in claimed)
    assert busiest == 20
    rate = (len(claimed) - 20) / (claimed[-1] - claimed[0])
    assert rate / 2.0 > 0.97  # 20 per 10.25 s; one-second buckets allowed only 20 per 11 s


def test_a_send_that_waited_in_the_queue_pushes_later_claims_back(time_machine):
    time_machine.move_to(START, tick=False)
    assert claim_starts(ALICE_KEY, 20)[0] == 20

    time_machine.move_to(START + 5, tick=False)
    mark_sent(ALICE_KEY, START)  # one of them only went out now

    time_machine.move_to(START + SPAN + 0.01, tick=False)
    assert claim_starts(ALICE_KEY, 20)[0] == 19
    assert seconds_until_free(ALICE_KEY) == pytest.approx(5 - 0.01)


def test_each_api_key_has_its_own_budget(time_machine):
    time_machine.move_to(START, tick=False)
    assert claim_starts(ALICE_KEY, 20)[0] == 20

    assert claim_starts(BOB_KEY, 20)[0] == 20


def test_the_cache_never_holds_the_api_key(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "ratelimit-key-check",
        }
    }

    claim_starts(ALICE_KEY, 1)[0]

    keys = list(caches["default"]._cache)  # type: ignore[attr-defined]
    assert keys
    assert not any(ALICE_KEY in key for key in keys)


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")
def test_dispatchers_racing_on_redis_never_claim_more_than_twenty_together():
    assert isinstance(caches["default"], RedisCache)
    claimed: list[int] = []
    start_together = threading.Barrier(20)

    def claim() -> None:
        start_together.wait()
        claimed.append(claim_starts(ALICE_KEY, 3)[0])

    threads = [threading.Thread(target=claim) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(claimed) == 20
