"""Admin pages of the simulator render and never show secrets."""

from django.urls import reverse

from simulator import services
from simulator.models import SimWebhookDelivery


def test_admin_pages_render_without_secrets(admin_client, sim_clock):
    app, secrets = services.create_app(
        "Admin app", webhook_url="http://127.0.0.1:9/h", webhook_secret="hook-secret-123"
    )
    services.request_clearances(app, [{"vin": "2HM00000000000002", "brand": "sandbox"}])
    pages = [
        reverse("admin:simulator_simulatedapp_changelist"),
        reverse("admin:simulator_simulatedapp_change", args=[app.pk]),
        reverse("admin:simulator_simclearance_changelist"),
        reverse("admin:simulator_issuedtoken_changelist"),
        reverse("admin:simulator_simwebhookdelivery_changelist"),
        reverse("admin:simulator_usedjti_changelist"),
        reverse("admin:simulator_simulatorclock_changelist"),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for secret in (secrets.client_secret, "hook-secret-123", secrets.private_key_pem[30:60]):
            assert secret not in html, url
    assert SimWebhookDelivery.objects.filter(event="ping").exists()


def test_admin_keeps_webhook_secret_when_left_empty(admin_client, sim_clock):
    app, _ = services.create_app(
        "Keep", webhook_url="http://127.0.0.1:9/h", webhook_secret="keep-me"
    )
    url = reverse("admin:simulator_simulatedapp_change", args=[app.pk])
    form = {
        "name": "Renamed",
        "scopes": app.scopes,
        "fleet_access": "on",
        "token_lifetime_seconds": 300,
        "webhook_url": app.webhook_url,
        "webhook_secret": "",
        "retry_after_seconds": 10,
        "next_fault_count": 0,
        "keys-TOTAL_FORMS": 0,
        "keys-INITIAL_FORMS": 0,
    }
    keys = list(app.keys.all())
    form["keys-TOTAL_FORMS"] = form["keys-INITIAL_FORMS"] = len(keys)
    for i, key in enumerate(keys):
        form[f"keys-{i}-id"] = key.pk
        form[f"keys-{i}-app"] = app.pk
        form[f"keys-{i}-kind"] = key.kind
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    app.refresh_from_db()
    assert app.name == "Renamed" and app.webhook_secret == "keep-me"
