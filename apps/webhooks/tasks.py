"""Task entry points for outgoing webhooks: each delivery, and each retry when it falls due, is
sent by a worker of its own; a sweep every minute hands out whatever is due and was not sent
(a task lost with its worker), scheduled in `WebhooksConfig.ready`."""

from apps import taskqueue
from apps.webhooks import sending, services


@taskqueue.needs_database
def deliver_webhook(delivery_id: int) -> None:
    sending.deliver(delivery_id=delivery_id)


@taskqueue.needs_database
def send_due_webhooks() -> None:
    """Every minute: hands each due delivery not yet sent to a worker of its own (never sends
    here, so a slow receiver cannot hold up the others), and trims old delivery logs."""
    services.deliver_soon(sending.hand_out_due())
    sending.forget_old_deliveries()
