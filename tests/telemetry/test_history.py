"""History beyond 24 hours: ranges, SQL buckets with bounded points, retention said."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from telemetry import history
from telemetry.models import TelemetrySnapshot
from tests.factories import ClearanceFactory

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture
def vehicle(organization):
    return ClearanceFactory(vehicle__organization=organization, status="approved").vehicle


def fill(vehicle, *, days: int, every: timedelta) -> int:
    """Snapshots every `every` over the last `days`: odometer +1 km and fuel falling per step."""
    steps = int(timedelta(days=days) / every)
    TelemetrySnapshot.objects.bulk_create(
        (
            TelemetrySnapshot(
                vehicle=vehicle,
                captured_at=NOW - (steps - i) * every,
                source="pull",
                data={},
                odometer_km=1000.0 + i,
                fuel_level=1.0 - (i % 100) / 100,
                speed_kmh=float(i % 60),
            )
            for i in range(steps)
        ),
        batch_size=2000,
    )
    return steps


@time_machine.travel(NOW, tick=False)
def test_a_month_of_snapshots_comes_back_in_bounded_buckets_from_one_query(vehicle):
    count = fill(vehicle, days=30, every=timedelta(minutes=5))
    assert count == 8640
    w = history.window({"range": "30d"})
    with CaptureQueriesContext(connection) as queries:
        rows = history.series(vehicle, w.since, w.until)
    assert len(queries) == 1 and "GROUP BY" in queries[0]["sql"].upper()
    assert 200 <= len(rows) <= history.MAX_POINTS + 1
    times = [r["captured_at"] for r in rows]
    assert times == sorted(times) and times[0] >= w.since
    # Per bucket: the highest odometer, the mean fuel level, the top speed.
    assert rows[-1]["odometer_km"] == 1000.0 + count - 1
    assert all(0 < r["fuel_level"] <= 1 for r in rows)
    assert max(r["speed_kmh"] for r in rows) == 59.0
    day = history.window({"range": "24h"})
    assert len(history.series(vehicle, day.since, day.until)) <= history.MAX_POINTS + 1


@time_machine.travel(NOW, tick=False)
def test_a_short_range_keeps_every_snapshot(vehicle):
    fill(vehicle, days=1, every=timedelta(minutes=15))
    w = history.window({"range": "24h"})
    rows = history.series(vehicle, w.since, w.until)
    assert len(rows) == 96  # one per 6-minute bucket: no snapshot merged with another


@time_machine.travel(NOW, tick=False)
def test_ranges_from_the_url(settings):
    settings.TELEMETRY_RETENTION_DAYS = 90
    assert history.window({}).key == "24h"
    seven = history.window({"range": "7d"})
    assert (seven.until - seven.since) == timedelta(days=7) and seven.label == "7 days"
    custom = history.window({"range": "custom", "from": "2026-11-01", "to": "2026-11-07"})
    assert custom.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert custom.until == datetime(2026, 11, 8, tzinfo=UTC)
    assert custom.as_params() == {"range": "custom", "from": "2026-11-01", "to": "2026-11-07"}
    assert not custom.error and not custom.clipped
    backwards = history.window({"range": "custom", "from": "2026-11-07", "to": "2026-11-01"})
    assert backwards.key == "24h" and "ends before it starts" in backwards.error
    unreadable = history.window({"range": "custom", "from": "yesterday", "to": ""})
    assert unreadable.key == "24h" and "as dates" in unreadable.error
    assert history.window({"range": "1y"}).key == "24h"
    old = history.window({"range": "custom", "from": "2025-01-01", "to": "2026-11-20"})
    assert old.clipped and old.since == NOW - timedelta(days=90)


@time_machine.travel(NOW, tick=False)
def test_the_panel_offers_the_ranges_and_says_the_retention(viewer_client, vehicle, settings):
    settings.TELEMETRY_RETENTION_DAYS = 60
    fill(vehicle, days=10, every=timedelta(hours=1))
    url = reverse("telemetry:panel", args=[vehicle.public_id])
    html = viewer_client.get(url, {"range": "7d"}, headers={"HX-Request": "true"}).content.decode()
    assert "History: last 7 days" in html
    assert 'hx-get="/telemetry/vehicles/' in html and "?range=7d" in html  # the poll keeps it
    for label in ("24 hours", "7 days", "30 days"):
        assert f">{label}</a>" in html
    assert "History is kept for 60 days (since 22 Sep 2026)" in html
    html = viewer_client.get(
        url, {"range": "custom", "from": "2026-11-10", "to": "2026-11-12"}
    ).content.decode()
    assert "History: 10 Nov 2026 – 12 Nov 2026" in html
    html = viewer_client.get(
        url, {"range": "custom", "from": "2026-11-12", "to": "2026-11-10"}
    ).content.decode()
    assert "The range ends before it starts" in html and "History: last 24 hours" in html
