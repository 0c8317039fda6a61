"""The simulator keeps its promises through outages: an outgoing webhook whose message was lost
is sent again (the row is the truth), and the MQTT publisher outlives a database outage."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

from simulator import services, webhooks
from simulator.management.commands import simulator_publish
from simulator.models import SimWebhookDelivery

pytestmark = pytest.mark.django_db


def test_a_delivery_whose_message_was_lost_is_queued_again(monkeypatch):
    app, _ = services.create_app("Outage app")
    services.set_webhook(app, "http://127.0.0.1:9/hook", "secret")
    queued = []
    monkeypatch.setattr(webhooks.tasks.deliver_webhook, "delay", queued.append)
    lost = webhooks.send_ping(app)
    fresh = webhooks.send_ping(app)
    queued.clear()  # the broker was down: both messages lost
    SimWebhookDelivery.objects.filter(pk=lost.pk).update(
        created_at=timezone.now() - timedelta(minutes=2)
    )
    assert webhooks.redeliver_waiting() == 1
    assert queued == [lost.pk]  # the fresh one may still have its message in flight
    SimWebhookDelivery.objects.filter(pk=fresh.pk).update(status="delivered")
    SimWebhookDelivery.objects.filter(pk=lost.pk).update(status="delivered")
    assert webhooks.redeliver_waiting() == 0


@pytest.mark.django_db(transaction=True)
def test_the_publisher_outlives_a_database_outage(monkeypatch):
    published = []

    class FakePublisher:
        def __init__(self, url):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def publish(self, targets, at):
            published.append(list(targets))
            raise KeyboardInterrupt  # the test's way out of the endless loop

    calls = []

    def targets():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("the database system is shutting down")
        return []

    monkeypatch.setattr(simulator_publish, "Publisher", FakePublisher)
    monkeypatch.setattr(simulator_publish, "approved_targets", targets)
    with pytest.raises(KeyboardInterrupt):
        call_command("simulator_publish", "--interval", "0.01")
    assert len(calls) == 2  # the round after the outage ran
    assert published == [[]]
