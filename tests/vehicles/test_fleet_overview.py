import pytest
from django.urls import reverse

from clearance.models import Clearance, ClearanceStatus
from clearance.selectors import filter_fleet, fleet_status_counts
from tests.factories import ClearanceFactory, CredentialFactory, VehicleFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def make_fleet(organization, statuses, *, brand="volkswagen", start=0, credential=None):
    credential = credential or CredentialFactory(organization=organization)
    vehicles = Vehicle.objects.bulk_create(
        Vehicle(
            organization=organization,
            vin=f"WVWZZZ1KZ{start + i:08d}",
            brand=brand,
            license_plate=f"B-FP {start + i}",
            nickname=f"Van {start + i}",
        )
        for i in range(len(statuses))
    )
    Clearance.objects.bulk_create(
        Clearance(vehicle=v, credential=credential, status=s)
        for v, s in zip(vehicles, statuses, strict=True)
    )
    return vehicles


def test_counters_come_from_one_aggregate_query(organization, django_assert_num_queries):
    make_fleet(organization, ["pending", "pending", "approved", "rejected", "revoking"])
    VehicleFactory(organization=organization, vin="WVWZZZ1KZ99999999")  # never requested
    with django_assert_num_queries(1):
        counts = fleet_status_counts(organization)
    assert counts["total"] == 6
    assert counts["pending"] == 2
    assert counts["approved"] == 1
    assert counts["none"] == 1
    assert counts["in_flight"] == 3  # pending x2 + revoking


def test_counters_ignore_other_organizations(organization, other_organization):
    make_fleet(organization, ["approved"])
    make_fleet(other_organization, ["approved", "approved"], start=10)
    assert fleet_status_counts(organization)["approved"] == 1


def test_filter_fleet_by_status_brand_text_and_credential(organization):
    cred_a = CredentialFactory(organization=organization, name="A")
    cred_b = CredentialFactory(organization=organization, name="B")
    make_fleet(organization, ["approved", "pending"], credential=cred_a)
    make_fleet(organization, ["approved"], brand="bmw", start=10, credential=cred_b)
    assert filter_fleet(organization, {"status": "approved"}).count() == 2
    assert filter_fleet(organization, {"brand": "bmw"}).count() == 1
    assert filter_fleet(organization, {"credential": str(cred_a.public_id)}).count() == 2
    assert filter_fleet(organization, {"q": "b-fp 10"}).count() == 1  # plate, any case
    assert filter_fleet(organization, {"q": "van 1"}).count() == 2  # nickname: Van 1, Van 10
    assert filter_fleet(organization, {"q": "1kz00000001"}).count() == 1  # VIN
    # Unknown values are ignored rather than failing.
    assert (
        filter_fleet(organization, {"status": "bogus", "brand": "x", "credential": "y"}).count()
        == 3
    )


def test_text_filter_finds_tag_names_and_values(organization, other_organization):
    VehicleFactory(organization=organization, tags={"depot": "Berlin-Nord"}, nickname="Van A")
    VehicleFactory(organization=organization, tags={"vans": ""}, nickname="Van B")
    VehicleFactory(organization=organization, tags={}, nickname="Truck")
    VehicleFactory(organization=other_organization, tags={"depot": "berlin"})
    assert [v.nickname for v in filter_fleet(organization, {"q": "berlin"})] == ["Van A"]
    assert [v.nickname for v in filter_fleet(organization, {"q": "VANS"})] == ["Van B"]
    assert filter_fleet(organization, {"q": "depot"}).count() == 1


def test_filter_fleet_sorts_by_whitelisted_columns_only(organization):
    make_fleet(organization, ["pending", "approved", "rejected"])
    statuses = [v.clearance.status for v in filter_fleet(organization, {"sort": "status"})]
    assert statuses == ["approved", "pending", "rejected"]
    statuses = [v.clearance.status for v in filter_fleet(organization, {"sort": "-status"})]
    assert statuses == ["rejected", "pending", "approved"]
    vins = [v.vin for v in filter_fleet(organization, {"sort": "password"})]
    assert vins == sorted(vins)


def test_overview_shows_counters_rows_and_keeps_filters_in_links(manager_client, organization):
    make_fleet(organization, ["pending", "approved"])
    response = manager_client.get(reverse("vehicles:fleet"), {"status": "pending", "q": "van"})
    content = response.content.decode()
    assert response.status_code == 200
    assert 'id="fleet-counters"' in content
    assert "WVWZZZ1KZ00000000" in content
    assert "WVWZZZ1KZ00000001" not in content  # approved, filtered out
    # Sorting links keep the filter.
    assert "status=pending" in content and "sort=" in content
    assert 'value="van"' in content


def test_non_terminal_rows_poll_and_terminal_rows_do_not(manager_client, organization):
    pending, approved = make_fleet(organization, ["pending", "approved"])
    content = manager_client.get(reverse("vehicles:fleet")).content.decode()
    assert reverse("vehicles:row", args=[pending.public_id]) in content
    assert reverse("vehicles:row", args=[approved.public_id]) not in content
    assert 'hx-trigger="every 3s"' in content


def test_row_partial_keeps_polling_then_stops_with_286(manager_client, organization):
    (vehicle,) = make_fleet(organization, ["pending"])
    url = reverse("vehicles:row", args=[vehicle.public_id])
    response = manager_client.get(url, headers=HTMX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith("<tr")
    assert "<html" not in response.content.decode()
    Clearance.objects.filter(vehicle=vehicle).update(status=ClearanceStatus.APPROVED)
    response = manager_client.get(url, headers=HTMX)
    assert response.status_code == 286
    assert "Approved" in response.content.decode()
    assert "hx-trigger" not in response.content.decode()


def test_row_partial_keeps_a_ticked_checkbox(manager_client, organization):
    (vehicle,) = make_fleet(organization, ["pending"])
    url = reverse("vehicles:row", args=[vehicle.public_id])
    response = manager_client.get(url, {"vehicle": str(vehicle.public_id)}, headers=HTMX)
    assert " checked" in response.content.decode()


def test_counters_partial_polls_while_something_is_in_flight(manager_client, organization):
    (vehicle,) = make_fleet(organization, ["pending"])
    response = manager_client.get(reverse("vehicles:counters"), headers=HTMX)
    assert response.status_code == 200
    assert "every 5s" in response.content.decode()
    Clearance.objects.filter(vehicle=vehicle).update(status=ClearanceStatus.APPROVED)
    response = manager_client.get(reverse("vehicles:counters"), headers=HTMX)
    assert response.status_code == 286
    assert "every 5s" not in response.content.decode()


def test_htmx_filter_request_returns_only_the_table_and_counters(manager_client, organization):
    make_fleet(organization, ["pending"])
    response = manager_client.get(
        reverse("vehicles:fleet"), {"q": "van"}, headers={**HTMX, "HX-Target": "fleet-table"}
    )
    content = response.content.decode()
    assert 'id="fleet-table"' in content
    assert 'hx-swap-oob="true"' in content  # counters refreshed out of band
    assert "<html" not in content


def test_pagination(manager_client, organization):
    make_fleet(organization, ["approved"] * 60)
    content = manager_client.get(reverse("vehicles:fleet")).content.decode()
    assert "Page 1 of 2" in content
    content = manager_client.get(reverse("vehicles:fleet"), {"page": 2}).content.decode()
    assert "WVWZZZ1KZ00000059" in content
    assert "WVWZZZ1KZ00000000" not in content


@pytest.mark.parametrize("fleet_size", [10, 10_000])
def test_overview_query_count_does_not_grow_with_the_fleet(
    manager_client, organization, fleet_size, django_assert_max_num_queries
):
    statuses = ["pending", "approved", "rejected", "revoking", "queued"]
    make_fleet(organization, [statuses[i % 5] for i in range(fleet_size)])
    url = reverse("vehicles:fleet")
    # 10: with the member's telemetry columns and the organization's places (issue 16).
    with django_assert_max_num_queries(10) as captured:
        response = manager_client.get(url, {"sort": "-status"})
    assert response.status_code == 200
    with django_assert_max_num_queries(len(captured)):
        manager_client.get(url, {"status": "pending", "q": "van", "page": 2})
    # The polled partials: session, user, membership + one query each.
    with django_assert_max_num_queries(4):
        manager_client.get(reverse("vehicles:counters"), headers=HTMX)
    vehicle = (
        Vehicle.objects.filter(organization=organization)
        .exclude(clearance__status="approved")
        .first()
    )
    # + the member's telemetry columns (a row of an approved vehicle is not polled).
    with django_assert_max_num_queries(5):
        manager_client.get(reverse("vehicles:row", args=[vehicle.public_id]), headers=HTMX)


def test_empty_states_say_what_to_do(manager_client, viewer_client, organization):
    content = manager_client.get(reverse("vehicles:fleet")).content.decode()
    assert "No vehicles yet" in content and reverse("vehicles:add") in content
    content = viewer_client.get(reverse("vehicles:fleet")).content.decode()
    assert "ask a manager" in content
    make_fleet(organization, ["approved"])
    content = manager_client.get(reverse("vehicles:fleet"), {"q": "nothing-like-this"}).content
    assert b"No vehicles match these filters" in content


def test_viewer_sees_no_write_controls(viewer_client, organization):
    make_fleet(organization, ["approved"])
    content = viewer_client.get(reverse("vehicles:fleet")).content.decode()
    assert "bulk-form" not in content
    assert reverse("vehicles:add") not in content
    assert "row-select" not in content


def test_row_of_a_vehicle_without_clearance(manager_client, organization):
    vehicle = VehicleFactory(organization=organization)
    response = manager_client.get(reverse("vehicles:row", args=[vehicle.public_id]))
    assert response.status_code == 286
    assert "Not requested" in response.content.decode()


def test_clearance_factory_vehicle_shows_in_list(manager_client, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    content = manager_client.get(reverse("vehicles:fleet")).content.decode()
    assert clearance.vehicle.vin in content


def test_sorting_through_htmx_keeps_the_sort_for_the_next_filter(manager_client, organization):
    make_fleet(organization, ["pending", "approved"])
    response = manager_client.get(
        reverse("vehicles:fleet"), {"sort": "-status"}, headers={**HTMX, "HX-Target": "fleet-table"}
    )
    content = response.content.decode()
    assert 'name="sort" value="-status" form="fleet-filters"' in content
    assert 'aria-sort="descending"' in content


def test_htmx_filter_pushes_a_clean_url(manager_client, organization):
    make_fleet(organization, ["pending"])
    response = manager_client.get(
        reverse("vehicles:fleet"),
        {"q": "van", "status": "", "brand": "", "sort": "vin"},
        headers={**HTMX, "HX-Target": "fleet-table"},
    )
    assert response.headers["HX-Push-Url"] == "/fleet/?q=van"


def test_export_link_carries_the_current_filter(manager_client, organization):
    make_fleet(organization, ["pending", "approved"])
    content = manager_client.get(reverse("vehicles:fleet"), {"status": "pending"}).content.decode()
    try:
        export = reverse("imports:export")
    except Exception:
        pytest.skip("the CSV export is not installed")
    assert f'href="{export}?status=pending"' in content
    csv = b"".join(manager_client.get(f"{export}?status=pending").streaming_content).decode()
    assert "WVWZZZ1KZ00000000" in csv and "WVWZZZ1KZ00000001" not in csv
