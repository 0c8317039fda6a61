import re

import pytest
from django.urls import reverse
from django.utils import timezone

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


def rows_on_screen(content: str) -> str:
    """What the page's poll sends: "id.version" of every row on screen."""
    return ",".join(
        f"{row}.{version}"
        for row, version in re.findall(r'data-row="([^"]+)" data-v="([^"]+)"', content)
    )


def live(client, content: str, **params):
    counters = re.search(r'id="fleet-live"[^>]*data-counters="([^"]*)"', content).group(1)
    query = {"rows": rows_on_screen(content), "c": counters, **params}
    return client.get(reverse("vehicles:live"), query, headers=HTMX)


def test_one_poll_for_the_page_and_none_per_row(manager_client, organization):
    make_fleet(organization, ["pending"] * 50)
    content = manager_client.get(reverse("vehicles:fleet")).content.decode()
    assert content.count('id="fleet-live"') == 1 and reverse("vehicles:live") in content
    assert 'hx-trigger="every' not in content  # no row or counter polls on its own
    assert content.count("data-row=") == 50


def test_the_poll_answers_only_the_rows_that_moved_and_the_counters_when_they_moved(
    manager_client, organization
):
    pending, other, _approved = make_fleet(organization, ["pending", "pending", "approved"])
    content = manager_client.get(reverse("vehicles:fleet")).content.decode()
    quiet = live(manager_client, content).content.decode()
    assert 'data-changed="0"' in quiet and "<tr" not in quiet and "fleet-counters" not in quiet
    assert 'id="bell"' in quiet  # the notification bell rides on the same poll

    Clearance.objects.filter(vehicle=pending).update(status=ClearanceStatus.APPROVED)
    answer = live(manager_client, content, sel=str(pending.public_id)).content.decode()
    assert f'id="row-{pending.public_id}"' in answer and f"row-{other.public_id}" not in answer
    assert 'data-changed="2"' in answer  # the row and the counters
    row = answer[answer.index(f'id="row-{pending.public_id}"') :]
    assert 'hx-swap-oob="true"' in row[:300] and "Approved" in row and " checked" in row
    counters = answer[answer.index('id="fleet-counters"') :]
    assert 'hx-swap-oob="true"' in counters[:200]
    assert re.search(r'id="fleet-summary"[^>]*hx-swap-oob="true"', answer)


def test_the_summary_line_follows_the_counters_under_a_filter(manager_client, organization):
    first, _second = make_fleet(organization, ["pending", "pending"])
    content = manager_client.get(reverse("vehicles:fleet"), {"status": "pending"}).content
    content = content.decode()
    assert "2 of 2 vehicles match the filter" in content
    Clearance.objects.filter(vehicle=first).update(status=ClearanceStatus.APPROVED)
    answer = live(manager_client, content, status="pending").content.decode()
    assert "1 of 2 vehicles match the filter" in answer  # never a stale count beside the counters


def test_a_deleted_row_leaves_the_page(manager_client, organization):
    (vehicle,) = make_fleet(organization, ["pending"])
    content = manager_client.get(reverse("vehicles:fleet")).content.decode()
    Vehicle.objects.filter(pk=vehicle.pk).delete()
    answer = live(manager_client, content).content.decode()
    assert f'<tr id="row-{vehicle.public_id}" hx-swap-oob="delete">' in answer


def test_pending_rows_never_say_last_seen(manager_client, organization):
    (vehicle,) = make_fleet(organization, ["pending"])
    Vehicle.objects.filter(pk=vehicle.pk).update(last_seen_at=timezone.now())
    content = manager_client.get(reverse("vehicles:fleet")).content.decode()
    row = content[content.index(f'id="row-{vehicle.public_id}"') :]
    row = row[: row.index("</tr>")]
    assert "no data access" in row and "just now" not in row


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
    with django_assert_max_num_queries(7) as captured:
        response = manager_client.get(url, {"sort": "-status"})
    assert response.status_code == 200
    # A text filter needs the one COUNT the status counters cannot answer.
    with django_assert_max_num_queries(len(captured) + 1):
        manager_client.get(url, {"status": "pending", "q": "van", "page": 2})
    # The page's one poll: session, user, membership, the rows on screen, the counters, the bell.
    content = manager_client.get(url).content.decode()
    with django_assert_max_num_queries(6):
        live(manager_client, content)


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
    assert response.status_code == 200
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
