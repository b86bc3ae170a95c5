from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apps.webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from apps import taskqueue

        # Any delivery due whose task was lost (retries have tasks due at their time).
        taskqueue.schedule(
            "apps.webhooks.tasks.send_due_webhooks", name="Send due webhooks", minutes=1
        )
