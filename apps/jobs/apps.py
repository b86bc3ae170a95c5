from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "apps.jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from apps import taskqueue
        from apps.accounts import usage
        from apps.jobs import limits, queue
        from apps.removal import routing

        # The member pages show what each person spent; only jobs know how to count it.
        usage.count_monthly_usage_with(limits.credits_used_this_month_by_member)
        usage.count_videos_in_flight_with(limits.videos_in_flight)
        taskqueue.schedule(f"{queue.TASKS}.sweep", name="Sweep jobs", minutes=1)
        # A poller first thing, waiting out the lock of one that died with a previous cluster.
        taskqueue.run_at_start(
            f"{queue.TASKS}.poll_due_jobs", queue.POLLER_LOCK_SECONDS + 1, queue=taskqueue.SENDS
        )

        def reroute(**kwargs: object) -> None:
            # Jobs waiting for a provider staff just switched off go to the next one now.
            queue.start_poller()

        routing.provider_switched.connect(reroute, weak=False, dispatch_uid="jobs:reroute")
