"""The simulator's fleet_clearance_changed body is what real HM sends (PROTOCOL.md §5): the VIN,
the new status in ``action`` and any ``detail`` -- no time of the change, nothing invented."""

import json
from datetime import timedelta

from simulator import services, tasks
from simulator.models import SimWebhookDelivery


def test_clearance_webhook_body_has_only_documented_keys(db, sim_clock):
    app, _ = services.create_app(
        "Body", webhook_url="http://127.0.0.1:9/hook", webhook_secret="s", approval_delay_seconds=5
    )
    services.request_clearances(app, [{"vin": "2HM00000000000003", "brand": "sandbox"}])
    services.request_clearances(app, [{"vin": "WBADT43452G296403", "brand": "bmw"}])
    sim_clock.advance(timedelta(seconds=6))
    tasks.tick()
    sim_clock.advance(timedelta(hours=3))
    tasks.tick()
    bodies = [
        json.loads(d.body)
        for d in SimWebhookDelivery.objects.filter(event="fleet_clearance_changed").order_by("pk")
    ]
    assert {b["event"]["action"] for b in bodies} == {"pending", "approved", "rejected"}
    for body in bodies:
        assert set(body) == {"vehicle", "event"}
        assert set(body["vehicle"]) == {"vin"}
        assert set(body["event"]) <= {"action", "detail"}
        assert "timestamp" not in json.dumps(body)
    rejected = next(b for b in bodies if b["event"]["action"] == "rejected")
    assert rejected["event"]["detail"]
