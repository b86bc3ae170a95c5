from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    verbose_name = "API"

    def ready(self) -> None:
        from apps.jobs import queue

        # Idempotency keys are kept a day and then forgotten, by the worker's schedule.
        queue.SCHEDULES["apps.api.tasks.forget_idempotency_keys"] = (
            "Forget idempotency keys older than a day",
            60,
        )
