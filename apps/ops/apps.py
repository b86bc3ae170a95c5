from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "apps.ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from apps import taskqueue

        # Every minute: a closed day is rolled up soon after midnight, and a day whose jobs
        # changed (one ended, a result expired) soon after, for the page and /metrics.
        taskqueue.schedule(
            "apps.ops.tasks.refresh_rollups",
            name="Roll up the operations page's closed days",
            minutes=1,
        )
