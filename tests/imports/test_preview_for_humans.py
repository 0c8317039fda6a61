"""The import preview for humans: identical messages grouped, the valid brands listed once, the
check-digit warning only where it is mandatory, the Import button in a bar at the top; the
upload form makes a person choose among several HM applications."""

from __future__ import annotations

import pytest
from django.urls import reverse

from imports.models import ImportJob
from imports.views import row_ranges
from tests.factories import CredentialFactory
from tests.imports.helpers import make_vin
from tests.imports.test_views import post_file, validated

pytestmark = pytest.mark.django_db


def test_row_ranges():
    assert row_ranges([2, 3, 4, 7, 9, 10]) == "2–4, 7, 9–10"
    assert row_ranges([5]) == "5"


def test_identical_messages_are_grouped_and_brands_listed_once(manager_client):
    rows = [f"{make_vin(i)},bmw,=tag-without-name" for i in range(47)]
    rows += [f"{make_vin(100 + i)},Trabant," for i in range(3)]
    rows += ["1HMD3W5DA8C7Y5DNA,sandbox,", "1M8GDM9A1KP042788,bmw,"]  # sandbox; wrong digit
    data = "vin,brand,tags\n" + "\n".join(rows) + "\n"
    post_file(manager_client, data.encode())
    job = validated(ImportJob.objects.get())
    page = manager_client.get(reverse("imports:job", args=[job.public_id])).content.decode()
    assert "<td>2–48</td><td>tags</td><td><strong>47 rows:</strong>" in page
    assert page.count("has no name before") == 1
    assert "<td>49–51</td><td>brand</td><td><strong>3 rows:</strong>" in page
    assert page.count("Volvo Cars") == 1 and 'id="valid-brands"' in page
    warnings = page[page.index("<h3>Warnings</h3>") :]
    assert warnings.count("check digit") == 1 and "<td>53</td>" in warnings  # not the sandbox VIN
    bar = page.index('id="preview-bar"')
    assert bar < page.index("<h3>Errors</h3>")
    assert page.index("Import 2 new vehicles", bar) < page.index("<h3>Errors</h3>")


def test_nothing_to_import_is_not_ready_to_confirm(manager_client):
    post_file(manager_client, b"vin,brand\nBAD,bmw\n")
    validated(ImportJob.objects.get())
    page = manager_client.get(reverse("imports:upload")).content.decode()
    assert "Nothing to import" in page and "Ready to confirm" not in page


def test_several_applications_make_a_person_choose(manager_client, organization):
    CredentialFactory(organization=organization, name="Simulator", environment="simulator")
    CredentialFactory(organization=organization, name="Main app", environment="production")
    page = manager_client.get(reverse("imports:upload")).content.decode()
    assert "Choose an HM application…" in page
    assert "Simulator (offline stand-in)" in page and "Simulator (Simulator" not in page
    assert "selected>None" not in page
    response = post_file(manager_client, f"vin,brand\n{make_vin(1)},bmw\n".encode())
    assert response.status_code == 200 and "Choose the HM application" in response.content.decode()
    assert not ImportJob.objects.exists()
    response = post_file(
        manager_client, f"vin,brand\n{make_vin(1)},bmw\n".encode(), credential="none"
    )
    assert response.status_code == 302 and ImportJob.objects.get().credential_public_id is None
