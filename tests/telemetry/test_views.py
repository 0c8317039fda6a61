from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.urls import reverse

from clearance.hm import errors as hm
from durable import work
from telemetry import pull, schedule, services, tasks
from telemetry.models import TelemetryPull
from telemetry.parse import parse_rest
from tests.factories import ClearanceFactory, VehicleFactory
from tests.telemetry import schemas
from tests.telemetry.conftest import record_pull
from tests.utils import require

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture
def vehicle(organization):
    return ClearanceFactory(
        vehicle__organization=organization, vehicle__vin="1HMD3W5DA8C7Y5DNA", status="approved"
    ).vehicle


@pytest.fixture
def with_data(vehicle):
    services.record_snapshot(vehicle, parse_rest(sample("rest_full.json")), source="pull")
    return vehicle


def panel_url(vehicle) -> str:
    return reverse("telemetry:panel", args=[vehicle.public_id])


@time_machine.travel(NOW, tick=False)
def test_panel_shows_values_with_their_age(viewer_client, with_data):
    response = viewer_client.get(panel_url(with_data), headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode().replace("\xa0", " ")
    assert "<html" not in html  # only the fragment
    assert 'id="telemetry-live"' in html and "<h2" not in html  # embedded in the vehicle page
    assert "12,346 km" in html
    assert "42 %" in html and "81 %" in html
    assert "updated <time" in html and "5 minutes ago" in html
    assert "Front left" in html and "Open" in html
    assert html.count("<svg") >= 3  # odometer, fuel/battery and speed charts
    assert "js-telemetry-map" in html and "&quot;lat&quot;: 52.52" in html
    assert "style=" not in html.replace('<link rel="stylesheet"', "")
    assert "telemetry-field is-stale" in html  # doors were reported an hour earlier


@time_machine.travel(NOW + timedelta(hours=2), tick=False)
def test_old_values_are_marked_stale(viewer_client, with_data, settings):
    settings.TELEMETRY_STALE_AFTER_SECONDS = 900
    html = viewer_client.get(panel_url(with_data), headers={"HX-Request": "true"}).content.decode()
    html = html.replace("\xa0", " ")
    assert html.count("telemetry-field is-stale") == html.count("data-field=") == 10
    assert "2 hours ago" in html


@time_machine.travel(NOW, tick=False)
def test_fresh_values_are_not_stale(viewer_client, with_data, settings):
    settings.TELEMETRY_STALE_AFTER_SECONDS = 3600
    html = viewer_client.get(panel_url(with_data), headers={"HX-Request": "true"}).content.decode()
    # The ignition (09:30) is older than an hour? No: 35 minutes. Doors 09:00 -> stale.
    assert 'data-field="ignition"' in html
    assert 'telemetry-field is-stale" data-field="doors_locked"' in html
    assert 'telemetry-field" data-field="speed_kmh"' in html


def test_panel_full_page_without_htmx(viewer_client, with_data):
    response = viewer_client.get(panel_url(with_data))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and "vendor/leaflet/leaflet.js" in html


def test_panel_says_when_there_is_no_data(viewer_client, organization):
    vehicle = ClearanceFactory(vehicle__organization=organization, status="pending").vehicle
    html = viewer_client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    assert "No telemetry yet" in html and "once the clearance is approved" in html


def test_failures_are_shown_in_words(viewer_client, vehicle):
    services.record_snapshot(vehicle, parse_rest(sample("rest_miles_failure.json")), source="pull")
    html = viewer_client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    assert "The driver has turned on privacy mode" in html
    assert "The value is not available yet" in html


def test_other_organizations_vehicle_is_404(viewer_client, other_organization):
    stranger = VehicleFactory(organization=other_organization)
    assert viewer_client.get(panel_url(stranger)).status_code == 404
    url = reverse("telemetry:refresh", args=[stranger.public_id])
    assert viewer_client.post(url).status_code == 404


def test_refresh_queues_a_pull_and_polls(
    manager_client, vehicle, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[int] = []
    monkeypatch.setattr(
        tasks.pull_vehicle_telemetry, "delay", lambda pk, requested: sent.append(pk)
    )
    url = reverse("telemetry:refresh", args=[vehicle.public_id])
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(url, headers={"HX-Request": "true"})
    assert sent == [vehicle.pk]
    html = response.content.decode()
    assert 'hx-trigger="every 2s,' in html and "Refreshing" in html
    # The worker finishes: the next poll shows the result and slows down.
    asleep = hm.VehicleUnreachable(status_code=408, errors=[hm.HMErrorItem("Vehicle is asleep")])
    monkeypatch.setattr(pull, "_client_for", lambda credential: FakeHM(asleep))
    tasks.pull_vehicle_telemetry.run(vehicle.pk, requested=True)
    html = manager_client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    assert "Refresh failed" in html and "offline or asleep" in html
    assert 'hx-trigger="every 30s,' in html


def test_refresh_without_javascript_redirects(manager_client, vehicle, monkeypatch):
    monkeypatch.setattr(tasks.pull_vehicle_telemetry, "delay", lambda *a, **kw: None)
    response = manager_client.post(reverse("telemetry:refresh", args=[vehicle.public_id]))
    assert response.status_code == 302
    # Without JavaScript the form is on the standalone panel page, which works on its own.
    assert response["Location"] == panel_url(vehicle)


def test_refresh_needs_post(manager_client, vehicle):
    assert (
        manager_client.get(reverse("telemetry:refresh", args=[vehicle.public_id])).status_code
        == 405
    )


def test_fleet_map_lists_last_positions(
    viewer_client, organization, other_organization, django_assert_max_num_queries
):
    a = ClearanceFactory(
        vehicle__organization=organization, vehicle__nickname="Van A", status="approved"
    ).vehicle
    VehicleFactory(organization=organization)  # never reported
    foreign = ClearanceFactory(
        vehicle__organization=other_organization, vehicle__nickname="Foreign", status="approved"
    ).vehicle
    for v, lat in ((a, 52.5), (foreign, 48.1)):
        payload = sample("rest_full.json")
        payload["vehicle_location"]["coordinates"]["data"]["latitude"] = lat
        services.record_snapshot(v, parse_rest(payload), source="pull")
    with django_assert_max_num_queries(10):
        response = viewer_client.get(reverse("telemetry:fleet_map"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Van A" in html and "Foreign" not in html
    assert [p["label"] for p in map_data(viewer_client)] == ["Van A"]
    assert "1 without a known position" in html
    assert 'data-kind="fleet"' in html and "leaflet.markercluster.js" in html


def test_last_seen_map(organization, with_data):
    from telemetry.selectors import last_seen_map

    other = VehicleFactory(organization=organization)
    seen = last_seen_map([with_data.pk, other.pk])
    assert list(seen) == [with_data.pk]


def test_admin_lists_snapshots(client, with_data, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    response = client.get(
        reverse("admin:telemetry_telemetrysnapshot_changelist") + "?q=1HMD3W5DA8C7Y5DNA"
    )
    assert response.status_code == 200
    assert "1HMD3W5DA8C7Y5DNA" in response.content.decode()


def test_nav_links_to_the_fleet_map(viewer_client):
    html = viewer_client.get(reverse("telemetry:fleet_map")).content.decode()
    assert 'aria-current="page">Map</a>' in html


@time_machine.travel(NOW, tick=False)
def test_fleet_overview_shows_last_seen_and_sorts_by_it(viewer_client, organization, with_data):
    VehicleFactory(
        organization=organization, vin="WVWZZZ1KZ99999999", last_seen_at=NOW - timedelta(days=2)
    )
    # Approved but never reported: "never"; without data access: said so, not "never".
    ClearanceFactory(
        vehicle=VehicleFactory(organization=organization, vin="WVWZZZ1KZ88888888"),
        status="approved",
    )
    VehicleFactory(organization=organization, vin="WVWZZZ1KZ77777777")
    response = viewer_client.get(reverse("vehicles:fleet") + "?sort=-seen")
    html = response.content.decode().replace("\xa0", " ")
    assert response.status_code == 200
    assert "Last seen" in html
    assert "4 minutes ago" in html  # HM's newest timestamp, 10:00:07
    assert html.index("1HMD3W5DA8C7Y5DNA") < html.index("WVWZZZ1KZ99999999")
    assert "never" in html
    assert "no data access" in html


def test_a_scheduled_pull_does_not_make_the_panel_busy(viewer_client, vehicle):
    assert schedule.sync_schedule() == (1, 0)  # the vehicle's pull is scheduled
    html = viewer_client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    assert "Refreshing" not in html and 'hx-trigger="every 30s,' in html


def door_payload(locks: list[dict], positions: list[dict] | None = None) -> dict:
    doors: dict = {"locks": locks}
    if positions is not None:
        doors["positions"] = positions
    return {"doors": doors}


@time_machine.travel(NOW, tick=False)
def test_failed_door_values_are_shown_in_words(viewer_client, with_data):
    # A newer pull: HM could not read the locks at all, and one door's position failed.
    failed = door_payload(
        [
            {
                "failure": {"reason": "execution_timeout", "description": ""},
                "timestamp": "2026-11-21T10:01:00Z",
            }
        ],
        [
            {
                "data": {"location": "rear_left"},
                "failure": {"reason": "oem_error", "description": "Sensor fault"},
                "timestamp": "2026-11-21T10:01:00Z",
            }
        ],
    )
    services.record_snapshot(with_data, parse_rest(failed), source="pull")
    html = viewer_client.get(panel_url(with_data), headers={"HX-Request": "true"}).content.decode()
    html = html.replace("\xa0", " ")
    doors = html[html.index("telemetry-doors") :]
    assert "Lock state failed: The car did not answer in time" in doors  # the "All" row
    assert "Position failed: The carmaker reported an error (Sensor fault)" in doors
    # The last known values stay next to the failures.
    assert "Front left" in doors and "Locked" in doors and "<strong>Open</strong>" in doors
    # The overall "Doors" field shows HM's failure beside the last known state.
    field = html[html.index('data-field="doors_locked"') :]
    field = field[: field.index("</div>")]
    assert "Unlocked" in field and "The car did not answer in time" in field


@time_machine.travel(NOW, tick=False)
def test_data_without_hm_time_says_so_on_the_panel(viewer_client, vehicle):
    no_time = {"diagnostics": {"odometer": {"data": {"value": 7, "unit": "kilometers"}}}}
    services.record_snapshot(vehicle, parse_rest(no_time), source="pull")
    html = viewer_client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    assert "sent no usable time" in html
    assert "at an unknown time" in html  # the value itself has no HM time either


def parked_payload(at: datetime, fuel: float) -> dict:
    stamp = at.isoformat().replace("+00:00", "Z")
    return {
        "diagnostics": {
            "speed": {"data": {"value": 0, "unit": "kilometers_per_hour"}, "timestamp": stamp},
            "fuel_level": {"data": fuel, "timestamp": stamp},
        }
    }


@time_machine.travel(NOW, tick=False)
def test_charts_of_a_parked_car_have_sensible_axes_and_units(viewer_client, vehicle):
    for minutes, fuel in ((30, 0.96), (20, 0.96), (10, 0.96)):
        payload = parked_payload(NOW - timedelta(minutes=minutes), fuel)
        services.record_snapshot(vehicle, parse_rest(payload), source="pull")
    html = viewer_client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    speed = html[html.index("<title>Speed</title>") :]
    speed = speed[: speed.index("</svg>")]
    axis = re.findall(r'class="chart-axis" x="48" y="[\d.]+" text-anchor="end">([^<]*)<', speed)
    assert axis == ["10", "0"]  # never -1 to 1 km/h
    assert "Fuel: 96 %" in html and "% %" not in html


def ignition_states_in_the_schema() -> list[str]:
    require(schemas.available(), f"HM's Auto API JSON schemas are not at {schemas.SCHEMA_DIR}")
    states: set[str] = set()
    for variant in (schemas.REST, schemas.STREAM):
        path = schemas.SCHEMA_DIR / variant / "L13" / "misc" / "custom_types.schema.json"
        states |= set(json.loads(path.read_text())["$defs"]["ignition_state"]["enum"])
    return sorted(states)


def test_every_ignition_state_of_the_schema_is_shown_in_words():
    from telemetry.selectors import IGNITION_WORDS, _display

    states = ignition_states_in_the_schema()
    assert states == sorted(IGNITION_WORDS)  # a new state in HM's schema needs words here
    for state in states:
        words = _display("ignition", state)
        assert words == IGNITION_WORDS[state] and words != state
    assert _display("ignition", "lock") == "Off, steering locked"
    # A state HM invents tomorrow is shown as it came, never a crash.
    assert _display("ignition", "half_on") == "half_on"


@time_machine.travel(NOW, tick=False)
def test_the_panel_shows_the_ignition_in_words(viewer_client, vehicle):
    payload = {"ignition": {"state": {"data": "lock", "timestamp": "2026-11-21T10:00:00Z"}}}
    services.record_snapshot(vehicle, parse_rest(payload), source="pull")
    html = viewer_client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    field = html[html.index('data-field="ignition"') :]
    field = field[: field.index("</div>")]
    assert "Off, steering locked" in field and ">Lock<" not in field


# --- Refresh answers only a Refresh somebody pressed; Refresh only where it can work ---------


class FakeHM:
    def __init__(self, answer):
        self.answer = answer

    def get_vehicle_data(self, vin):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def get_panel(client, vehicle) -> str:
    html = client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    return html.replace("\xa0", " ")


@time_machine.travel(NOW, tick=False)
def test_a_scheduled_pull_is_never_shown_as_a_refresh(viewer_client, with_data, monkeypatch):
    use_answer = sample("rest_full.json")
    monkeypatch.setattr(pull, "_client_for", lambda credential: FakeHM(use_answer))
    schedule.sync_schedule()
    schedule.make_due(with_data.pk)
    assert schedule.pull_one(schedule.pulls(), pull.fetch)  # the scheduled pull
    assert TelemetryPull.objects.get(vehicle=with_data).outcome == "ok"
    html = get_panel(viewer_client, with_data)
    assert "Refreshed" not in html and "Received" not in html
    assert "Refreshing" not in html and 'hx-trigger="every 30s,' in html
    # It says plainly when data last arrived instead.
    assert "Data last arrived" in html


@time_machine.travel(NOW, tick=False)
def test_a_running_scheduled_pull_does_not_make_the_panel_busy(viewer_client, vehicle):
    record_pull(vehicle, "running")
    html = get_panel(viewer_client, vehicle)
    assert "Refreshing" not in html and "Waiting for High Mobility" not in html


@time_machine.travel(NOW, tick=False)
def test_a_failed_scheduled_pull_says_so_without_calling_it_a_refresh(viewer_client, vehicle):
    record_pull(vehicle, "failed", "The vehicle is offline or asleep.")
    html = get_panel(viewer_client, vehicle)
    assert "The last automatic update got no data" in html and "offline or asleep" in html
    assert "Refresh failed" not in html and "Refreshed" not in html


def test_the_answer_to_a_refresh_is_shown_then_goes(viewer_client, vehicle):
    with time_machine.travel(NOW, tick=False):
        record_pull(vehicle, "ok", "Received 8 values from High Mobility.", requested=True)
        html = get_panel(viewer_client, vehicle)
        assert "Refreshed <time" in html and "just now</time>:" in html
        assert "Received 8 values" in html
    with time_machine.travel(NOW + timedelta(minutes=11), tick=False):
        assert "Received 8 values" not in get_panel(viewer_client, vehicle)


@time_machine.travel(NOW, tick=False)
def test_a_pull_under_way_when_refresh_is_pressed_does_not_answer_it(vehicle, monkeypatch):
    monkeypatch.setattr(tasks.pull_vehicle_telemetry, "delay_on_commit", lambda *a, **kw: None)
    monkeypatch.setattr(pull, "_client_for", lambda credential: FakeHM(sample("rest_full.json")))
    schedule.sync_schedule()
    schedule.make_due(vehicle.pk)
    # A scheduled pull starts; Refresh is pressed while it waits for HM.
    running = work.claim(schedule.pulls(), limit=1, lease_seconds=60).get()
    with time_machine.travel(NOW + timedelta(seconds=1), tick=False):
        assert pull.request_refresh(vehicle)
        assert pull.get_pull_status(vehicle)["state"] == "running"
        schedule.finish(running, pull.fetch(vehicle.pk), started=NOW)
        status = pull.get_pull_status(vehicle)
        assert status["state"] == "queued" and status["requested"]  # still waiting
        assert work.due(schedule.pulls()).count() == 1  # its own pull is due at once
        assert schedule.pull_one(schedule.pulls(), pull.fetch)  # the Refresh's own pull
    status = pull.get_pull_status(vehicle)
    assert status["state"] == "ok" and status["requested"]


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("pending", "once the clearance is approved (it is pending now)"),
        ("queued", "once the clearance is approved (it is queued now)"),
        ("revoked", "Data access has been revoked, so no new data arrives"),
        ("revoking", "Data access is being revoked"),
        ("rejected", "rejected the clearance"),
        ("canceled", "was canceled"),
        ("made_up_by_hm", "it is made_up_by_hm now"),
    ],
)
def test_refresh_is_offered_only_for_an_approved_clearance(
    manager_client, organization, monkeypatch, status, words
):
    sent: list = []
    monkeypatch.setattr(tasks.pull_vehicle_telemetry, "delay", lambda *a, **kw: sent.append(a))
    vehicle = ClearanceFactory(vehicle__organization=organization, status=status).vehicle
    html = get_panel(manager_client, vehicle)
    assert "telemetry:refresh" not in html and "Refresh</button>" not in html
    assert "/refresh/" not in html
    assert words in html
    assert "Press Refresh" not in html
    # A forged POST queues nothing either.
    url = reverse("telemetry:refresh", args=[vehicle.public_id])
    response = manager_client.post(url, headers={"HX-Request": "true"})
    assert response.status_code == 200 and words in response.content.decode().replace("\xa0", " ")
    assert sent == [] and pull.get_pull_status(vehicle) is None


def test_refresh_needs_a_clearance_and_a_credential(manager_client, organization):
    no_clearance = VehicleFactory(organization=organization)
    assert "has not been requested" in get_panel(manager_client, no_clearance)
    no_credential = ClearanceFactory(
        vehicle__organization=organization, status="approved", credential=None
    ).vehicle
    html = get_panel(manager_client, no_credential)
    assert "no High Mobility credential" in html and "/refresh/" not in html


def test_an_approved_vehicle_offers_refresh(manager_client, vehicle):
    html = get_panel(manager_client, vehicle)
    assert "/refresh/" in html and "Refresh</button>" in html
    assert "Press Refresh to ask High Mobility" in html
    assert "telemetry-unavailable" not in html


# --- Operator settings are named only for those who can change them ---------------------------


def test_managers_get_plain_words_about_missing_map_tiles(manager_client, with_data, settings):
    settings.MAP_TILE_URL = ""
    for html in (
        get_panel(manager_client, with_data),
        manager_client.get(reverse("telemetry:fleet_map")).content.decode(),
    ):
        assert "No map background is configured; positions are drawn on a plain grid." in html
        assert "MAP_TILE_URL" not in html


def test_owners_and_staff_get_the_setting_name(
    owner_client, manager_user, organization, with_data, settings
):
    from tests.conftest import logged_in_client

    settings.MAP_TILE_URL = ""
    manager_user.is_staff = True
    manager_user.save(update_fields=["is_staff"])
    staff = logged_in_client(manager_user, organization)
    for client in (owner_client, staff):
        assert "set <code>MAP_TILE_URL</code>" in get_panel(client, with_data)
        fleet_map = client.get(reverse("telemetry:fleet_map")).content.decode()
        assert "set <code>MAP_TILE_URL</code>" in fleet_map


def test_no_hint_when_tiles_are_configured(owner_client, with_data, settings):
    settings.MAP_TILE_URL = "https://tiles.example.com/{z}/{x}/{y}.png"
    html = get_panel(owner_client, with_data)
    assert "MAP_TILE_URL" not in html and "No map background" not in html


# --- Fleet map: approved vehicles by default, status and server-side dates -------------------


def position_payload(lat: float, at: str = "2026-11-22T01:21:48Z") -> dict:
    return {
        "vehicle_location": {
            "coordinates": {"data": {"latitude": lat, "longitude": 13.4}, "timestamp": at}
        }
    }


def map_data(client, query: str = "") -> list[dict]:
    """The fleet map's compact JSON, each vehicle as a dict (status as [code, label])."""
    data = client.get(reverse("telemetry:fleet_map_data") + query).json()
    rows = [dict(zip(data["fields"], row, strict=True)) for row in data["vehicles"]]
    for row in rows:
        row["status"] = data["statuses"][row["status"]][:2]  # [code, label]
    return rows


def map_points(html: str) -> list[dict]:
    import html as html_lib

    raw = re.search(r'data-points="([^"]*)"', html).group(1)
    return json.loads(html_lib.unescape(raw))


@time_machine.travel(NOW + timedelta(days=1), tick=False)
def test_fleet_map_shows_approved_vehicles_with_status_and_portal_dates(
    viewer_client, organization
):
    approved = ClearanceFactory(
        vehicle__organization=organization, vehicle__nickname="Van A", status="approved"
    ).vehicle
    revoked = ClearanceFactory(
        vehicle__organization=organization, vehicle__nickname="Old van", status="revoked"
    ).vehicle
    for v, lat in ((approved, 52.5), (revoked, 48.1)):
        services.record_snapshot(v, parse_rest(position_payload(lat)), source="pull")

    html = viewer_client.get(reverse("telemetry:fleet_map")).content.decode()
    points = map_data(viewer_client)
    assert [p["label"] for p in points] == ["Van A"]
    assert points[0]["status"] == ["approved", "Approved"]
    assert points[0]["seen"] == "2026-11-22 01:21:48 UTC"  # ISO-like, not 11/22/2026, 1:21 AM
    assert points[0]["freshness_words"] == "Silent for 8 h"  # reported 01:21, now 10:05
    assert "Old van" not in html
    assert "1 vehicle with a position but no approved data access" in html
    rows = html[html.index("fleet-positions") :]
    assert "Van A" in rows and "52.50000, 13.40000" in rows and "2026-11-22 01:21:48 UTC" in rows
    assert "Approved" in rows

    html = viewer_client.get(reverse("telemetry:fleet_map") + "?show=all").content.decode()
    points = {p["label"]: p for p in map_data(viewer_client, "?show=all")}
    assert points["Old van"]["status"] == ["revoked", "Revoked"]
    rows = html[html.index("fleet-positions") :]
    assert "Old van" in rows and "Revoked" in rows
    assert "Show approved vehicles only" in html


@time_machine.travel(NOW, tick=False)
def test_track_points_carry_the_portal_date(viewer_client, with_data):
    html = get_panel(viewer_client, with_data)
    points = map_points(html)
    assert points[-1]["when"] == "2026-11-21 10:00:07 UTC"


# --- Without JavaScript ---------------------------------------------------------------------


def test_vehicle_page_links_to_the_panel_without_javascript(viewer_client, vehicle):
    html = viewer_client.get(reverse("vehicles:detail", args=[vehicle.public_id])).content.decode()
    noscript = re.search(r"<noscript>(.*?)</noscript>", html, re.S).group(1)
    assert f'href="{panel_url(vehicle)}"' in noscript


def test_the_panel_page_works_without_javascript(manager_client, with_data):
    html = manager_client.get(panel_url(with_data)).content.decode()
    assert "<html" in html and "Loading telemetry" not in html
    # The chosen history range (24 hours by default) stays after a Refresh.
    assert 'method="post"' in html and f'action="{panel_url(with_data)}refresh/?range=24h"' in html
    assert "12,346 km" in html


def test_a_refresh_the_task_queue_cannot_take_says_so(
    manager_client, vehicle, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.pull_vehicle_telemetry, "delay", broker_down)
    url = reverse("telemetry:refresh", args=[vehicle.public_id])
    with django_capture_on_commit_callbacks(execute=True):
        manager_client.post(url, headers={"HX-Request": "true"})
    assert pull.get_pull_status(vehicle)["state"] == "failed"
    html = manager_client.get(panel_url(vehicle), headers={"HX-Request": "true"}).content.decode()
    assert "task queue is unreachable" in html
