from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apps.webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from apps import taskqueue

        # Retries as they fall due, and any delivery whose first task was lost.
        taskqueue.schedule(
            "apps.webhooks.tasks.send_due_webhooks", name="Send due webhooks", minutes=1
        )
