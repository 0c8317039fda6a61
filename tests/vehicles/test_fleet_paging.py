"""Fleet pages fetched ids first, the later half from the end: every sort and filter still shows
each vehicle exactly once, in order, and the last page costs the queries of the first."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clearance.models import Clearance
from clearance.selectors import (
    SORTS,
    FleetPaginator,
    filter_fleet,
    fleet_count,
    fleet_status_counts,
    parse_fleet_filter,
)
from telemetry.models import LatestTelemetry
from tests.factories import CredentialFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db

STATUSES = ["pending", "approved", None, "approved", "rejected", None, "pending"]
BRANDS = ["bmw", "bmw", "kia", "ford"]


@pytest.fixture
def fleet(organization, other_organization):
    """23 vehicles with many ties (brand, status, time, no plate, no clearance) and a second
    organization's vehicles interleaved by VIN."""
    credential = CredentialFactory(organization=organization)
    same_time = timezone.now()
    for org, start in ((organization, 0), (other_organization, 1)):
        vehicles = Vehicle.objects.bulk_create(
            Vehicle(
                organization=org,
                vin=f"WVWZZZ1KZ{2 * i + start:08d}",
                brand=BRANDS[i % len(BRANDS)],
                license_plate="" if i % 3 else f"B-FP {i % 5}",
                nickname=f"Van {i % 4}",
            )
            for i in range(23)
        )
        Clearance.objects.bulk_create(
            Clearance(
                vehicle=v,
                credential=credential if org == organization else None,
                status=status,
                status_changed_at=same_time if n % 2 else None,
            )
            for n, v in enumerate(vehicles)
            if (status := STATUSES[n % len(STATUSES)]) is not None
        )
    return organization


def all_pages(organization, params, per_page):
    flt = parse_fleet_filter(params)
    count = fleet_count(flt, fleet_status_counts(organization))
    paginator = FleetPaginator(filter_fleet(organization, flt), per_page, count=count, sort=flt)
    return [[v.vin for v in paginator.page(n).object_list] for n in paginator.page_range]


@pytest.mark.parametrize("sort", sorted(SORTS))
@pytest.mark.parametrize("direction", ["", "-"])
def test_pages_neither_skip_nor_repeat_in_any_sort(fleet, sort, direction):
    params = {"sort": f"{direction}{sort}"}
    expected = [v.vin for v in filter_fleet(fleet, params)]
    assert len(expected) == 23
    for per_page in (1, 4, 5, 50):
        pages = all_pages(fleet, params, per_page)
        assert [vin for page in pages for vin in page] == expected, per_page
        assert all(len(page) == per_page for page in pages[:-1])


@pytest.mark.parametrize(
    "params",
    [
        {"status": "approved"},
        {"status": "none", "sort": "-vin"},
        {"brand": "bmw", "sort": "plate"},
        {"q": "van 1", "sort": "-changed"},
        {"status": "pending", "brand": "kia"},
        {"status": "canceled"},
    ],
)
def test_filtered_pages_neither_skip_nor_repeat(fleet, params):
    expected = [v.vin for v in filter_fleet(fleet, params)]
    pages = all_pages(fleet, params, 3)
    assert [vin for page in pages for vin in page] == expected


def test_the_counters_give_the_number_of_pages(fleet, django_assert_num_queries):
    counts = fleet_status_counts(fleet)
    flt = parse_fleet_filter({"status": "approved"})
    paginator = FleetPaginator(filter_fleet(fleet, flt), 2, count=fleet_count(flt, counts))
    with django_assert_num_queries(1):  # the page only, no COUNT
        page = paginator.page(paginator.num_pages)
    assert paginator.count == counts["approved"] == 7
    assert len(page.object_list) == 1
    assert fleet_count(parse_fleet_filter({"brand": "bmw"}), counts) is None  # counted instead


def test_the_last_page_costs_the_queries_of_the_first(
    fleet, manager_client, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr("vehicles.views.common.PAGE_SIZE", 5)
    url = reverse("vehicles:fleet")
    expected = [v.vin for v in Vehicle.objects.filter(organization=fleet).order_by("vin")]
    with django_assert_max_num_queries(20) as first:
        response = manager_client.get(url)
    assert [row.vin for row in response.context["rows"]] == expected[:5]
    for page in ("5", "99"):  # the last page, and past the end as a stale link would ask
        with django_assert_max_num_queries(len(first)):
            response = manager_client.get(url, {"page": page})
        assert response.context["page_obj"].number == 5
        assert [row.vin for row in response.context["rows"]] == expected[20:]


TELEMETRY_SORTS = [key for key, columns in SORTS.items() if columns[0].startswith("latest_")]


@pytest.fixture
def reporting(fleet, other_organization):
    """Newest telemetry for most vehicles of both organizations (ties, missing values, and
    values on vehicles that are not approved, which sort with those without data)."""
    now = timezone.now()
    rows = [
        LatestTelemetry(
            vehicle=vehicle,
            captured_at=now,
            energy_level=None if n % 5 == 0 else (n % 4) / 4,
            estimated_range_km=None if n % 6 == 0 else float(n % 3 * 100),
            odometer_km=float(n % 7 * 1000),
            position_at=None if n % 4 == 0 else now - timedelta(hours=n % 3),
        )
        for n, vehicle in enumerate(Vehicle.objects.order_by("pk"))
        if n % 9
    ]
    LatestTelemetry.objects.bulk_create(rows)
    return fleet


@pytest.mark.parametrize("sort", TELEMETRY_SORTS)
@pytest.mark.parametrize("direction", ["", "-"])
@pytest.mark.parametrize("per_page", [2, 5])
def test_telemetry_sorts_page_from_the_index_in_the_same_order(
    reporting, sort, direction, per_page
):
    params = {"sort": f"{direction}{sort}"}
    expected = [v.vin for v in filter_fleet(reporting, params)]
    pages = all_pages(reporting, params, per_page)
    assert [vin for page in pages for vin in page] == expected
    assert len(expected) == 23


def test_a_telemetry_sorted_page_is_one_query_and_past_the_values_three(
    reporting, django_assert_num_queries
):
    flt = parse_fleet_filter({"sort": "-energy"})
    counts = fleet_status_counts(reporting)
    paginator = FleetPaginator(filter_fleet(reporting, flt), 2, count=counts["total"], sort=flt)
    with django_assert_num_queries(2):  # the ids from the index, then the rows
        assert len(paginator.page(1).object_list) == 2
    with django_assert_num_queries(4):  # no value there: counted once, then the rest by VIN
        assert len(paginator.page(paginator.num_pages).object_list) == 1
