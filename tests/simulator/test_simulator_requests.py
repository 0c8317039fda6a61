"""The simulator counts every request naming a VIN, answered from the current state or not."""

from datetime import timedelta

from simulator import services
from simulator.models import SimClearance

VIN = "WBADT43452G296403"


def test_a_vin_requested_again_while_alive_is_counted_and_answered_as_it_is(sim_app, sim_clock):
    app, _secrets = sim_app
    first = services.request_clearances(app, [{"vin": VIN, "brand": "bmw"}])
    assert first[0]["status"] == "pending"
    sim_clock.advance(timedelta(seconds=10))
    again = services.request_clearances(app, [{"vin": VIN, "brand": "bmw"}])
    assert again[0]["status"] == "approved"  # the current state, not a new request
    clearance = SimClearance.objects.get(app=app, vin=VIN)
    assert clearance.times_requested == 2
    assert clearance.history == []
