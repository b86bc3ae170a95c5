"""Kie's create limit as the dispatcher's schedule: claims of starts in a sliding log in the
shared cache, never more than 20 in any 10 seconds, and the full rate over a long run."""

import os
import threading
import time

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from apps.removal.ratelimit import (
    LEAD_WEIGHT,
    MARGIN_SECONDS,
    ROUND_SLACK_SECONDS,
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
    # Claimed a poller round's slack ahead, for the moment the oldest leaves.
    assert seconds_until_free(ALICE_KEY) == pytest.approx(SPAN - ROUND_SLACK_SECONDS)

    time_machine.move_to(START + SPAN - ROUND_SLACK_SECONDS - 0.01, tick=False)
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
    assert seconds_until_free(ALICE_KEY) == pytest.approx(SPAN - 9 - ROUND_SLACK_SECONDS)
    time_machine.move_to(START + SPAN + 0.1, tick=False)
    assert claim_starts(ALICE_KEY, 20)[0] == 10
    assert seconds_until_free(ALICE_KEY) == pytest.approx(5 - 0.1 - ROUND_SLACK_SECONDS)


def test_a_long_burst_runs_at_the_full_rate_and_no_ten_seconds_see_more_than_twenty(
    time_machine,
):
    # The dispatcher wakes when the next start can be claimed, as the poller does.
    claimed: list[float] = []
    now = START
    while now < START + 300:
        time_machine.move_to(now, tick=False)
        count, at = claim_starts(ALICE_KEY, 50)
        claimed += [at] * count
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
    # The late start frees in 4.99 s; the 5 s its hand-over took make later ones be claimed
    # a second (a fifth of it) more ahead.
    lead = LEAD_WEIGHT * 5 + ROUND_SLACK_SECONDS
    assert seconds_until_free(ALICE_KEY) == pytest.approx(5 - 0.01 - lead)


def test_after_slow_hand_overs_a_start_is_claimed_ahead_and_its_worker_waits_for_it(
    time_machine, monkeypatch
):
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    time_machine.move_to(START, tick=False)
    assert claim_starts(ALICE_KEY, 20) == (20, START)
    time_machine.move_to(START + 5, tick=False)
    for _ in range(20):
        mark_sent(ALICE_KEY, START)  # every hand-over took 5 s: the lead grows to its cap
    assert sleeps == []  # late workers send at once

    frees_at = START + 5 + SPAN
    time_machine.move_to(frees_at - 2.5, tick=False)
    assert claim_starts(ALICE_KEY, 1)[0] == 0  # more than the lead (2 s) ahead
    assert seconds_until_free(ALICE_KEY) == pytest.approx(0.5)
    time_machine.move_to(frees_at - 1.5, tick=False)
    assert claim_starts(ALICE_KEY, 30) == (20, pytest.approx(frees_at))
    mark_sent(ALICE_KEY, frees_at)  # its worker came at once: it waits until the start frees
    assert sleeps == [pytest.approx(1.5)]


def test_with_a_second_of_hand_over_a_long_burst_still_runs_at_the_full_rate(
    time_machine, monkeypatch
):
    # Every send reaches a worker a second after its claim; a worker early for its start
    # sleeps, which here moves the clock (then the simulation goes back to its own time).
    monkeypatch.setattr(time, "sleep", time_machine.shift)
    hand_over = 1.0
    arriving: list[tuple[float, float]] = []  # (when the worker has it, the start it claimed)
    sent: list[float] = []
    now = next_round = START
    while now < START + 300:
        time_machine.move_to(now, tick=False)
        if now >= next_round:
            count, claimed_at = claim_starts(ALICE_KEY, 50)
            arriving += [(now + hand_over, claimed_at)] * count
            next_round = now + max(0.001, seconds_until_free(ALICE_KEY))
        for arrival in [arrival for arrival in arriving if arrival[0] <= now]:
            arriving.remove(arrival)
            mark_sent(ALICE_KEY, arrival[1])
            sent.append(time.time())
            time_machine.move_to(now, tick=False)
        now = min([next_round] + [arrives for arrives, _ in arriving])

    sent.sort()
    busiest = max(sum(1 for t in sent if a <= t < a + 10) for a in sent)
    assert busiest == 20
    rate = (len(sent) - 20) / (sent[-1] - sent[0])
    assert rate / 2.0 > 0.97  # claimed only as each start freed, it was 20 per 11.25 s


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
