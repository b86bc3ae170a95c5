"""Task creation stays under Kie's 20 per 10 seconds per key, counted in the shared cache."""

import os
import threading

import httpx
import pytest
import respx
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from apps.jobs.providers.base import RateLimited
from apps.jobs.providers.kie import KieProvider
from apps.jobs.providers.ratelimit import free_create_slots, take_create_slot

ALICE_KEY = "alice-kie-key"
BOB_KEY = "bob-kie-key"
START = 1_800_000_000.0  # on a second boundary


def spend(api_key: str, count: int) -> None:
    for _ in range(count):
        take_create_slot(api_key)


def test_twenty_creates_pass_and_the_next_waits_for_the_window(time_machine):
    time_machine.move_to(START, tick=False)
    spend(ALICE_KEY, 20)

    with pytest.raises(RateLimited) as raised:
        take_create_slot(ALICE_KEY)

    assert raised.value.code == "429"
    assert raised.value.retryable
    assert raised.value.retry_after == 11.0


def test_free_slots_say_how_many_creates_would_pass_without_spending_any(time_machine):
    time_machine.move_to(START, tick=False)
    spend(ALICE_KEY, 5)

    assert free_create_slots(ALICE_KEY) == 15
    assert free_create_slots(ALICE_KEY) == 15
    spend(ALICE_KEY, 15)
    assert free_create_slots(ALICE_KEY) == 0
    assert free_create_slots(BOB_KEY) == 20
    time_machine.move_to(START + 11, tick=False)
    assert free_create_slots(ALICE_KEY) == 20


def test_the_budget_comes_back_when_its_second_leaves_the_window(time_machine):
    time_machine.move_to(START, tick=False)
    spend(ALICE_KEY, 20)

    time_machine.move_to(START + 10.5, tick=False)
    with pytest.raises(RateLimited):
        take_create_slot(ALICE_KEY)
    time_machine.move_to(START + 11, tick=False)
    spend(ALICE_KEY, 20)

    with pytest.raises(RateLimited):
        take_create_slot(ALICE_KEY)


def test_the_wait_ends_when_enough_old_creates_have_left(time_machine):
    time_machine.move_to(START, tick=False)
    spend(ALICE_KEY, 10)
    time_machine.move_to(START + 5, tick=False)
    spend(ALICE_KEY, 10)
    time_machine.move_to(START + 9.25, tick=False)

    with pytest.raises(RateLimited) as raised:
        take_create_slot(ALICE_KEY)

    assert raised.value.retry_after == 1.8  # the first ten leave at START + 11
    time_machine.move_to(START + 11, tick=False)
    spend(ALICE_KEY, 10)


def test_no_ten_second_span_sees_more_than_twenty(time_machine):
    # Creates as fast as allowed for a minute, a quarter second apart.
    admitted: list[float] = []
    for step in range(240):
        now = START + step / 4
        time_machine.move_to(now, tick=False)
        try:
            take_create_slot(ALICE_KEY)
        except RateLimited:
            continue
        admitted.append(now)

    busiest = max(sum(1 for t in admitted if a <= t < a + 10) for a in admitted)
    assert busiest == 20
    assert len(admitted) >= 100


def test_refused_creates_do_not_use_up_the_budget(time_machine):
    time_machine.move_to(START, tick=False)
    spend(ALICE_KEY, 20)
    for _ in range(5):
        with pytest.raises(RateLimited):
            take_create_slot(ALICE_KEY)

    time_machine.move_to(START + 11, tick=False)
    spend(ALICE_KEY, 20)


def test_each_api_key_has_its_own_budget(time_machine):
    time_machine.move_to(START, tick=False)
    spend(ALICE_KEY, 20)

    spend(BOB_KEY, 20)


def test_the_cache_never_holds_the_api_key(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "ratelimit-key-check",
        }
    }

    take_create_slot(ALICE_KEY)

    keys = list(caches["default"]._cache)  # type: ignore[attr-defined]
    assert len(keys) == 1
    assert ALICE_KEY not in keys[0]


def test_the_client_holds_back_the_twenty_first_create_without_calling_kie(time_machine):
    time_machine.move_to(START, tick=False)
    kie = KieProvider(api_key=ALICE_KEY, base_url="https://api.kie.ai")
    link = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"
    with respx.mock() as kie_api:
        route = kie_api.post("https://api.kie.ai/api/v1/jobs/createTask").mock(
            return_value=httpx.Response(200, json={"code": 200, "data": {"taskId": "t"}})
        )
        for _ in range(20):
            kie.start(link, callback_url=None)

        with pytest.raises(RateLimited):
            kie.start(link, callback_url=None)

    assert route.call_count == 20
    kie.close()


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")
def test_processes_sharing_redis_never_pass_more_than_twenty_together(time_machine):
    assert isinstance(caches["default"], RedisCache)
    time_machine.move_to(START, tick=False)
    admitted: list[bool] = []
    start_together = threading.Barrier(40)

    def create() -> None:
        start_together.wait()
        try:
            take_create_slot(ALICE_KEY)
        except RateLimited:
            admitted.append(False)
        else:
            admitted.append(True)

    threads = [threading.Thread(target=create) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    passed_together = admitted.count(True)
    # Racing callers may all refuse at the edge, but refusals give their slot back:
    passed_after = 0
    while passed_after < 40:
        try:
            take_create_slot(ALICE_KEY)
        except RateLimited:
            break
        passed_after += 1

    assert passed_together <= 20
    assert passed_together + passed_after == 20
