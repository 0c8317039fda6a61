"""The "Test connection" button end to end: a real Celery worker calls the simulator over HTTP."""

import pytest
from django.urls import reverse

from tests.conftest import wait_for
from tests.support.simulator import simulator_credential

pytestmark = pytest.mark.slow


def _status(owner_client, credential) -> str:
    return owner_client.get(
        reverse("clearance:credential_test_status", args=[credential.public_id]),
        HTTP_HX_REQUEST="true",
    ).content.decode()


def _press(owner_client, credential) -> str:
    response = owner_client.post(
        reverse("clearance:credential_test", args=[credential.public_id]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    return response.content.decode()


def test_test_connection_runs_in_the_worker_and_the_page_shows_the_result(
    transactional_db, celery_worker, owner_client, organization
):
    credential, _, secrets = simulator_credential(organization, "Button app")
    first = _press(owner_client, credential)
    assert 'hx-trigger="every 1s"' in first  # the page polls while the worker works

    html = wait_for(
        lambda: (page := _status(owner_client, credential)) and "It works" in page and page,
        timeout=60,
        message=f"the worker's connection test\n{celery_worker.log()[-2000:]}",
    )
    assert "HM knows 0 vehicles" in html
    assert "hx-trigger" not in html  # polling stopped
    assert secrets.client_secret not in html

    # A wrong secret: the same path reports the failure in words.
    credential.client_secret = "definitely-wrong"
    credential.save()
    _press(owner_client, credential)
    html = wait_for(
        lambda: (
            (page := _status(owner_client, credential)) and "The connection failed" in page and page
        ),
        timeout=60,
        message="the failed connection test",
    )
    assert "The client secret is wrong" in html
    assert "definitely-wrong" not in html
    assert "definitely-wrong" not in celery_worker.log()
    assert secrets.client_secret not in celery_worker.log()
