from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    verbose_name = "API"

    def ready(self) -> None:
        from apps.accounts.models import register_event_kinds
        from apps.api.models import ApiKeyEvent
        from apps.jobs import queue

        # The team's activity log names what this app records there.
        register_event_kinds(ApiKeyEvent.choices)
        # Idempotency keys are kept a day and then forgotten, by the worker's schedule.
        queue.SCHEDULES["apps.api.tasks.forget_idempotency_keys"] = (
            "Forget idempotency keys older than a day",
            60,
        )
