from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "apps.jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from apps.accounts import usage
        from apps.jobs import limits, queue
        from apps.jobs.providers import check_policy
        from apps.webhooks import services as webhooks

        check_policy()

        # The member pages show what each person spent; only jobs know how to count it.
        usage.count_monthly_usage_with(limits.credits_used_this_month_by_member)
        # Webhooks sit below jobs and know no task queue: new deliveries reach a worker at once
        # through the queue jobs owns (without it, the minute sweep would still send them).
        webhooks.announce_with(queue.deliver_webhooks)
