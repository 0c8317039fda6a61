"""Signed webhooks: ping, time-driven changes found by tick, delivery and retries."""

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.core.management import call_command

from clearance.hm import PrivateKeyAuth
from simulator import clock, services, tasks
from simulator import webhooks as sim_webhooks
from simulator.models import SimClearance, SimWebhookDelivery


class Receiver:
    def __init__(self):
        self.requests = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hooked_app(db, sim_clock, receiver):
    return services.create_app(
        "Hooked", webhook_url=receiver.url, webhook_secret="s3cret", approval_delay_seconds=5
    )


def deliver_all():
    for delivery in SimWebhookDelivery.objects.filter(status="pending").order_by("pk"):
        sim_webhooks.deliver(delivery.pk)


def test_ping_on_creation_signed(hooked_app, receiver):
    deliver_all()
    headers, body = receiver.requests[0]
    assert headers["X-HM-Event"] == "ping"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-HM-Signature-256"] == f"sha256={expected}"
    assert headers["X-HM-Signature"].startswith("sha1=")
    assert headers["X-HM-Delivery"]
    assert headers["User-Agent"] == "HM-Webhook/1.2.0"
    assert headers["Content-Type"] == "application/json"


def test_time_driven_changes_found_by_tick(hooked_app, receiver, sim_clock):
    app, _ = hooked_app
    services.request_clearances(app, [{"vin": "2HM00000000000003", "brand": "sandbox"}])
    services.request_clearances(app, [{"vin": "WBADT43452G296403", "brand": "bmw"}])
    assert tasks.tick() == 0  # nothing new yet
    sim_clock.advance(timedelta(seconds=6))
    assert tasks.tick() == 1  # the ordinary VIN was approved
    sim_clock.advance(timedelta(hours=3))
    assert tasks.tick() == 1  # seed 3 rejected
    assert tasks.tick() == 0
    deliver_all()
    events = [
        json.loads(body)
        for headers, body in receiver.requests
        if headers["X-HM-Event"] == "fleet_clearance_changed"
    ]
    changes = [(e["vehicle"]["vin"], e["event"]["action"]) for e in events]
    assert changes == [
        ("2HM00000000000003", "pending"),
        ("WBADT43452G296403", "pending"),
        ("WBADT43452G296403", "approved"),
        ("2HM00000000000003", "rejected"),
    ]
    assert events[-1]["event"]["detail"]
    assert SimClearance.objects.filter(settled=False).count() == 0


def test_delete_sends_revoking_then_revoked(hooked_app, receiver, sim_clock):
    app, _ = hooked_app
    services.request_clearances(app, [{"vin": "WBADT43452G296403", "brand": "bmw"}])
    sim_clock.advance(timedelta(seconds=6))
    services.delete_clearance(app, "WBADT43452G296403")  # also queues the missed "approved"
    sim_clock.advance(timedelta(seconds=6))
    sim_webhooks.detect_changes()
    deliver_all()
    actions = [
        json.loads(b)["event"]["action"] for h, b in receiver.requests if h["X-HM-Event"] != "ping"
    ]
    assert actions == ["pending", "approved", "revoking", "revoked"]


def test_failed_delivery_is_retried_then_marked(hooked_app, receiver):
    receiver.status = 500
    delivery = SimWebhookDelivery.objects.get(event="ping")
    assert sim_webhooks.deliver(delivery.pk, final_attempt=False) is False
    delivery.refresh_from_db()
    assert (
        delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code == 500
    )
    assert sim_webhooks.deliver(delivery.pk, final_attempt=True) is False
    delivery.refresh_from_db()
    assert delivery.status == "failed"


def test_task_retries_on_failure(hooked_app, receiver):
    receiver.status = 503
    delivery = SimWebhookDelivery.objects.get(event="ping")
    result = tasks.deliver_webhook.apply(args=[delivery.pk])
    assert result.state in ("RETRY", "FAILURE")
    delivery.refresh_from_db()
    # eager retries run at once: every attempt was made, then the delivery was given up
    assert delivery.attempts == tasks.deliver_webhook.max_retries + 1
    assert delivery.status == "failed"
    receiver.status = 200
    tasks.deliver_webhook.apply(args=[delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_clock_honours_time_machine_and_offset(db, sim_clock):
    with time_machine.travel(datetime(2030, 1, 1, tzinfo=UTC), tick=False):
        assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
        clock.advance(timedelta(hours=2))
        assert clock.now() == datetime(2030, 1, 1, 2, tzinfo=UTC)


def test_simulator_app_create_command(db, tmp_path, capsys):
    key_file = tmp_path / "key.json"
    call_command(
        "simulator_app_create",
        "--name",
        "Demo",
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--private-key-out",
        str(key_file),
    )
    out = capsys.readouterr().out
    assert "OAuth client id:" in out and "OAuth client secret:" in out and "webhook secret:" in out
    data = json.loads(key_file.read_text())
    assert data["private_key"].startswith("-----BEGIN PRIVATE KEY-----") and data["id"] in out
    PrivateKeyAuth.from_console_json("cid", data)


def test_simulator_clock_command(db, sim_clock, capsys):
    call_command("simulator_clock", "--advance", "3h")
    assert "offset +10800 s" in capsys.readouterr().out
    call_command("simulator_clock", "--reset")
    assert "offset +0 s" in capsys.readouterr().out
