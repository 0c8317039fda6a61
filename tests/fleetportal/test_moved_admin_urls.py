"""Admin pages of import jobs and telemetry snapshots moved with their apps; old bookmarks
still lead to them."""

import pytest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/admin/vehicles/importjob/", "/admin/imports/importjob/"),
        ("/admin/vehicles/importjob/7/change/", "/admin/imports/importjob/7/change/"),
        (
            "/admin/vehicles/telemetrysnapshot/?q=1HMD3W5DA8C7Y5DNA",
            "/admin/telemetry/telemetrysnapshot/?q=1HMD3W5DA8C7Y5DNA",
        ),
    ],
)
def test_old_admin_addresses_redirect_to_the_new_apps(admin_client, old, new):
    response = admin_client.get(old)
    assert response.status_code == 302
    assert response["Location"] == new
    assert admin_client.get(new).status_code in (200, 302)  # 302: the job 7 does not exist
