from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    verbose_name = "API"

    def ready(self) -> None:
        from apps import taskqueue

        # Idempotency keys are kept a day and then forgotten, by the worker's schedule.
        taskqueue.schedule(
            "apps.api.tasks.forget_idempotency_keys",
            name="Forget idempotency keys older than a day",
            minutes=60,
        )
