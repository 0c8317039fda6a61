"""The notification pages: bell, list with filters and mark read, rules (owners and managers
edit, viewers see), personal settings, webhook endpoints (owners; the secret shown once), admin."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clearance import state
from notifications.models import (
    AlertRule,
    EmailMode,
    EmailSubscription,
    EventDelivery,
    Notification,
    NotificationSettings,
    RuleKind,
    WebhookEndpoint,
)
from tests.factories import ClearanceFactory, MembershipFactory
from tests.notifications.conftest import make_endpoint, make_rule

pytestmark = pytest.mark.django_db


def reject(organization, **vehicle):
    clearance = ClearanceFactory(
        vehicle__organization=organization,
        status="pending",
        **{f"vehicle__{k}": v for k, v in vehicle.items()},
    )
    state.apply_status(clearance, "rejected", at=None, source="webhook", description="No consent.")
    return clearance


# --- bell and list --------------------------------------------------------------------------------


def test_the_bell_shows_the_unread_count_on_every_page(organization, viewer_user, viewer_client):
    make_rule(organization, RuleKind.CLEARANCE_REJECTED)
    page = viewer_client.get(reverse("vehicles:fleet")).content.decode()
    assert 'id="bell"' in page and "Notifications: 0 unread" in page
    reject(organization)
    reject(organization)
    page = viewer_client.get(reverse("vehicles:fleet")).content.decode()
    assert "Notifications: 2 unread" in page
    bell = viewer_client.get(reverse("notifications:bell"))
    assert bell["Cache-Control"].startswith("max-age=0")
    fragment = bell.content.decode()
    assert fragment.strip().startswith('<a id="bell"') and "Notifications: 2 unread" in fragment
    assert 'hx-trigger="every 30s' in fragment


def test_the_bell_costs_one_count_query(organization, viewer_user, viewer_client):
    make_rule(organization, RuleKind.CLEARANCE_REJECTED)
    for _ in range(5):
        reject(organization)
    viewer_client.get(reverse("notifications:bell"))
    with CaptureQueriesContext(connection) as queries:
        viewer_client.get(reverse("notifications:bell"))
    counts = [q["sql"] for q in queries if "notifications_notification" in q["sql"]]
    assert len(counts) == 1 and "COUNT(" in counts[0].upper()


def test_the_list_filters_and_marks_read(organization, viewer_user, viewer_client):
    rejected = make_rule(organization, RuleKind.CLEARANCE_REJECTED, name="Rejected")
    errors = make_rule(organization, RuleKind.CLEARANCE_ERROR, name="Errors")
    first = reject(organization, nickname="Blue van")
    second = reject(organization, nickname="Red van")
    failed = ClearanceFactory(vehicle__organization=organization, status="queued")
    state.apply_status(failed, "error", at=None, source="api")
    url = reverse("notifications:list")
    page = viewer_client.get(url).content.decode()
    assert page.count('class="notification unread"') == 3
    assert "3 unread" in page
    assert (
        viewer_client.get(url, {"kind": "clearance_error"})
        .content.decode()
        .count('id="notification-')
        == 1
    )
    by_rule = viewer_client.get(url, {"rule": str(rejected.public_id)}).content.decode()
    assert by_rule.count('id="notification-') == 2
    assert str(errors.public_id) in by_rule  # in the rule filter's choices
    found = viewer_client.get(url, {"q": "blue"}).content.decode()
    assert first.vehicle.vin in found and second.vehicle.vin not in found

    one = Notification.objects.get(user=viewer_user, alert__vehicle=second.vehicle)
    viewer_client.post(reverse("notifications:mark_read", args=[one.pk]), {"next": url})
    assert Notification.objects.filter(user=viewer_user, read_at__isnull=True).count() == 2
    unread = viewer_client.get(url, {"state": "unread"}).content.decode()
    assert second.vehicle.vin not in unread and first.vehicle.vin in unread
    viewer_client.post(reverse("notifications:mark_all_read"))
    assert not Notification.objects.filter(user=viewer_user, read_at__isnull=True).exists()


def test_opening_a_notification_goes_to_its_vehicle_and_marks_it_read(
    organization, viewer_user, viewer_client, owner_client
):
    make_rule(organization, RuleKind.CLEARANCE_REJECTED)
    clearance = reject(organization)
    mine = Notification.objects.get(user=viewer_user)
    answer = viewer_client.get(reverse("notifications:open", args=[mine.pk]))
    assert answer["Location"] == reverse("vehicles:detail", args=[clearance.vehicle.public_id])
    mine.refresh_from_db()
    assert mine.read_at is not None
    # Another member's notification is not found, and stays unread.
    assert owner_client.get(reverse("notifications:open", args=[mine.pk])).status_code == 404
    assert owner_client.post(reverse("notifications:mark_read", args=[mine.pk])).status_code == 302


def test_another_organizations_notifications_never_show(
    organization, other_organization, viewer_user, viewer_client
):
    MembershipFactory(organization=other_organization, user=viewer_user)
    make_rule(other_organization, RuleKind.CLEARANCE_REJECTED)
    theirs = reject(other_organization)
    page = viewer_client.get(reverse("notifications:list")).content.decode()
    assert theirs.vehicle.vin not in page and "0 unread" in page


# --- rules ----------------------------------------------------------------------------------------


def test_viewers_see_the_rules_but_cannot_change_them(organization, viewer_client):
    rule = make_rule(organization, RuleKind.BATTERY_LOW, name="EV battery", threshold=15)
    page = viewer_client.get(reverse("notifications:rules")).content.decode()
    assert "EV battery" in page and "Battery low: below 15 %" in page
    assert reverse("notifications:rule_add") not in page
    assert viewer_client.get(reverse("notifications:rule_add")).status_code == 403
    edit = reverse("notifications:rule_edit", args=[rule.public_id])
    assert viewer_client.post(edit, {"name": "x"}).status_code == 403
    toggle = reverse("notifications:rule_toggle", args=[rule.public_id])
    assert viewer_client.post(toggle, {"enabled": "0"}).status_code == 403
    delete = reverse("notifications:rule_delete", args=[rule.public_id])
    assert viewer_client.post(delete).status_code == 403
    assert AlertRule.objects.get().enabled


def test_a_manager_adds_a_rule_for_a_tag(organization, manager_client):
    answer = manager_client.post(
        reverse("notifications:rule_add"),
        {
            "name": "Berlin pending",
            "kind": "pending_too_long",
            "threshold": "10",
            "tag": "depot=berlin",
            "email_default": "digest",
            "enabled": "on",
        },
    )
    assert answer.status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.kind, rule.threshold, rule.tag_key, rule.tag_value, rule.email_default) == (
        "pending_too_long",
        10,
        "depot",
        "berlin",
        "digest",
    )


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"kind": "battery_low"}, "Say how many % for this rule."),
        ({"kind": "battery_low", "threshold": "120"}, "Choose between 1 and 99 %."),
        ({"kind": "silent", "threshold": "0"}, "Choose between 1 and 1440 hours."),
        ({"kind": "field_failure"}, "Choose the telemetry field whose failures to watch."),
        ({"kind": "clearance_rejected", "tag": "vans, depot=berlin"}, "Name one tag only"),
        ({"kind": "clearance_rejected", "name": "Taken"}, "Another rule already has this name."),
    ],
)
def test_rule_mistakes_are_explained(organization, manager_client, data, words):
    make_rule(organization, RuleKind.CLEARANCE_ERROR, name="Taken")
    page = manager_client.post(
        reverse("notifications:rule_add"),
        {"name": "New", "email_default": "immediate", **data},
    ).content.decode()
    assert words in page.replace("&#x27;", "'")
    assert AlertRule.objects.count() == 1


def test_another_organizations_rule_is_not_found(other_organization, manager_client):
    rule = make_rule(other_organization, RuleKind.CLEARANCE_ERROR)
    edit = reverse("notifications:rule_edit", args=[rule.public_id])
    assert manager_client.get(edit).status_code == 404
    delete = reverse("notifications:rule_delete", args=[rule.public_id])
    assert manager_client.post(delete).status_code == 404
    assert AlertRule.objects.filter(pk=rule.pk).exists()


def test_a_deleted_rule_leaves_its_alerts_closed_in_the_list(
    organization, manager_client, viewer_user
):
    rule = make_rule(organization, RuleKind.CLEARANCE_REJECTED, name="Old rule")
    reject(organization)
    manager_client.post(reverse("notifications:rule_delete", args=[rule.public_id]))
    assert not AlertRule.objects.exists()
    (notification,) = Notification.objects.filter(user=viewer_user)
    assert notification.alert.rule_name == "Old rule" and notification.alert.cleared_at


# --- personal settings ----------------------------------------------------------------------------


def test_a_viewer_chooses_time_zone_digest_hour_and_email_per_rule(
    organization, viewer_user, viewer_client
):
    rule = make_rule(organization, RuleKind.CLEARANCE_REJECTED, name="Rejections")
    url = reverse("notifications:settings")
    page = viewer_client.get(url).content.decode()
    assert "Rejections" in page and "Europe/Berlin" in page
    answer = viewer_client.post(
        url,
        {"time_zone": "Europe/Berlin", "digest_hour": "18", f"mode-{rule.public_id}": "digest"},
    )
    assert answer.status_code == 302
    saved = NotificationSettings.objects.get(user=viewer_user)
    assert (saved.time_zone, saved.digest_hour) == ("Europe/Berlin", 18)
    assert EmailSubscription.objects.get(user=viewer_user, rule=rule).mode == EmailMode.DIGEST
    bad = viewer_client.post(url, {"time_zone": "Mars/Olympus", "digest_hour": "7"})
    assert "Select a valid choice" in bad.content.decode()


# --- webhooks -------------------------------------------------------------------------------------


def test_webhooks_are_for_owners_only(organization, manager_client):
    endpoint = make_endpoint(organization, "https://hooks.example.com/a")
    assert manager_client.get(reverse("notifications:webhooks")).status_code == 403
    detail = reverse("notifications:webhook_detail", args=[endpoint.public_id])
    assert manager_client.get(detail).status_code == 403


def test_the_secret_is_shown_once(organization, owner_client, receiver):
    answer = owner_client.post(
        reverse("notifications:webhook_add"),
        {"url": receiver.url(), "description": "ERP", "event_types": ["clearance.changed"]},
    )
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in answer.content.decode()
    for url in (
        reverse("notifications:webhooks"),
        reverse("notifications:webhook_detail", args=[endpoint.public_id]),
    ):
        assert endpoint.secret not in owner_client.get(url).content.decode()
    rotated = owner_client.post(reverse("notifications:webhook_rotate", args=[endpoint.public_id]))
    old = endpoint.secret
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in rotated.content.decode()


def test_a_private_address_is_refused_when_saving(owner_client, settings):
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = False
    page = owner_client.post(
        reverse("notifications:webhook_add"),
        {"url": "http://127.0.0.1:9/hooks", "event_types": ["alert.fired"]},
    ).content.decode()
    assert "127.0.0.1 is a loopback address (this machine)" in page
    page = owner_client.post(
        reverse("notifications:webhook_add"),
        {"url": "http://169.254.169.254/latest/", "event_types": ["alert.fired"]},
    ).content.decode()
    assert "cloud metadata address" in page
    assert not WebhookEndpoint.objects.exists()


def test_plain_http_is_refused_where_https_is_required(owner_client, settings):
    settings.OUTGOING_WEBHOOKS_REQUIRE_HTTPS = True
    page = owner_client.post(
        reverse("notifications:webhook_add"),
        {"url": "http://hooks.example.com/x", "event_types": ["alert.fired"]},
    ).content.decode()
    assert "The URL must use https://" in page


def test_test_event_redeliver_and_turning_off(organization, owner_client, receiver):
    endpoint = make_endpoint(organization, receiver.url())
    detail = reverse("notifications:webhook_detail", args=[endpoint.public_id])
    owner_client.post(reverse("notifications:webhook_test", args=[endpoint.public_id]))
    delivery = EventDelivery.objects.get()
    assert delivery.event.type == "webhook.test"
    page = owner_client.get(detail).content.decode()
    assert "webhook.test" in page and "Pending" in page
    EventDelivery.objects.update(
        state="done", delivered_at=timezone.now(), last_status_code=200, attempts=1
    )
    owner_client.post(
        reverse("notifications:webhook_redeliver", args=[endpoint.public_id, delivery.public_id])
    )
    assert EventDelivery.objects.filter(event=delivery.event).count() == 2
    owner_client.post(reverse("notifications:webhook_enable", args=[endpoint.public_id]), {})
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "Turned off by" in endpoint.disabled_reason
    assert EventDelivery.objects.filter(state__in=["pending", "running"]).count() == 0
    page = owner_client.get(detail).content.decode()
    assert "Disabled." in page
    # The first delivery was delivered; the redelivery, still waiting, was canceled.
    assert "Delivered" in page and "Canceled" in page and "The endpoint was turned off." in page


def test_another_organizations_endpoint_is_not_found(other_organization, owner_client):
    endpoint = make_endpoint(other_organization, "https://hooks.example.com/a")
    assert (
        owner_client.get(
            reverse("notifications:webhook_detail", args=[endpoint.public_id])
        ).status_code
        == 404
    )
    test = reverse("notifications:webhook_test", args=[endpoint.public_id])
    assert owner_client.post(test).status_code == 404
    assert not EventDelivery.objects.exists()


# --- admin ----------------------------------------------------------------------------------------


def test_admin_lists_every_model_without_secrets(organization, owner_user):
    make_rule(organization, RuleKind.CLEARANCE_REJECTED)
    endpoint = make_endpoint(organization, "https://hooks.example.com/a")
    reject(organization)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    for model in (
        "alertrule",
        "alert",
        "notification",
        "notificationsettings",
        "emailsubscription",
        "outgoingemail",
        "webhookendpoint",
        "outgoingevent",
        "eventdelivery",
    ):
        answer = client.get(f"/admin/notifications/{model}/")
        assert answer.status_code == 200, model
        assert endpoint.secret not in answer.content.decode()
    change = client.get(f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/")
    assert change.status_code == 200 and endpoint.secret not in change.content.decode()


def test_the_nav_shows_alerts_to_everyone_and_webhooks_to_owners(viewer_client, owner_client):
    viewer_page = viewer_client.get(reverse("vehicles:fleet")).content.decode()
    owner_page = owner_client.get(reverse("vehicles:fleet")).content.decode()
    assert reverse("notifications:rules") in viewer_page
    assert reverse("notifications:webhooks") not in viewer_page
    assert reverse("notifications:webhooks") in owner_page


def test_renaming_a_rule_keeps_its_alerts_changing_what_it_watches_closes_them(
    organization, manager_client
):
    rule = make_rule(organization, RuleKind.PENDING_TOO_LONG, name="Slow", threshold=10)
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    rule.alerts.create(
        organization=organization,
        vehicle=clearance.vehicle,
        kind=rule.kind,
        rule_name=rule.name,
        title="Pending for 12 days",
        fired_at=clearance.vehicle.created_at,
    )
    edit = reverse("notifications:rule_edit", args=[rule.public_id])
    form = {"kind": "pending_too_long", "email_default": "immediate", "enabled": "on"}
    manager_client.post(edit, {**form, "name": "Very slow", "threshold": "10"})
    assert rule.alerts.filter(cleared_at__isnull=True).count() == 1
    manager_client.post(edit, {**form, "name": "Very slow", "threshold": "20"})
    assert rule.alerts.filter(cleared_at__isnull=True).count() == 0
    rule.refresh_from_db()
    assert (rule.name, rule.threshold) == ("Very slow", 20)
