"""Composing and sending notification emails (plain text and HTML), with retries.

An ``OutgoingEmail`` row is rendered when it is sent, in the member's time zone, from alerts of
its own organization only, and only while the member still belongs to it: a member who left (or
an alert of another organization, however it got linked) is never emailed. Alert emails carry a
one-click unsubscribe link and RFC 8058's List-Unsubscribe / List-Unsubscribe-Post headers.
"""

from __future__ import annotations

import logging
import smtplib
from email import policy as email_policy

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from durable import work
from notifications import delivery, preferences
from notifications.models import DeliveryStatus, OutgoingEmail
from organizations.models import Membership

logger = logging.getLogger(__name__)

LISTED = 50  # alerts listed in one email; the rest are counted and linked
# The templates (notifications/email/<name>.txt and .html) of each kind of email.
TEMPLATES: dict[str, str] = {
    OutgoingEmail.Kind.ALERTS: "alerts",
    OutgoingEmail.Kind.DIGEST: "digest",
    OutgoingEmail.Kind.ENDPOINT_DISABLED: "endpoint_disabled",
}


class _UnfoldedHeader(str):
    """A header kept on one line: Python's email package would otherwise RFC 2047-encode a long
    URL to fold it, which RFC 2369 headers forbid (mail clients then offer no unsubscribe)."""

    name: str

    def __new__(cls, name: str, value: str):
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


class NotificationMessage(EmailMultiAlternatives):
    """An email with List-Unsubscribe headers that survive the trip to the mail server."""

    def __init__(self, *args, list_headers: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.list_headers = list_headers or {}

    def message(self, *, policy=email_policy.default):
        msg = super().message(policy=policy)
        for name, value in self.list_headers.items():
            msg[name] = _UnfoldedHeader(name, value)
        return msg


def _link(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def context_for(email: OutgoingEmail, alerts: list) -> dict:
    organization = email.organization
    context = {
        "email": email,
        "organization": organization,
        "user": email.user,
        "alerts": alerts[:LISTED],
        "more": max(len(alerts) - LISTED, 0),
        "count": len(alerts),
        "notifications_url": _link(reverse("notifications:list")),
        "settings_url": _link(reverse("notifications:settings")),
        "site_url": settings.SITE_URL,
    }
    for alert in alerts[:LISTED]:
        alert.vehicle_url = _link(reverse("vehicles:detail", args=[alert.vehicle.public_id]))
    if email.kind == OutgoingEmail.Kind.ENDPOINT_DISABLED and email.endpoint is not None:
        context["endpoint"] = email.endpoint
        context["endpoint_url"] = _link(
            reverse("notifications:webhook_detail", args=[email.endpoint.public_id])
        )
    rule_ids = sorted({alert.rule_id for alert in alerts if alert.rule_id})
    if rule_ids:
        context["unsubscribe_url"] = preferences.unsubscribe_url(email.user_id, rule_ids)
        context["rule_names"] = sorted({alert.rule_name for alert in alerts})
    return context


def subject_for(email: OutgoingEmail, alerts: list) -> str:
    organization = email.organization.name
    if email.kind == OutgoingEmail.Kind.ENDPOINT_DISABLED:
        url = email.endpoint.url if email.endpoint else "an endpoint"
        return f"Webhook endpoint disabled: {url} ({organization})"
    if email.kind == OutgoingEmail.Kind.DIGEST:
        noun = "alert" if len(alerts) == 1 else "alerts"
        return f"Daily digest: {len(alerts)} {noun} in {organization}"
    if len(alerts) == 1:
        alert = alerts[0]
        return f"{alert.title}: {alert.vehicle} ({organization})"
    return f"{email.rule.name if email.rule else 'Alerts'}: {len(alerts)} vehicles ({organization})"


def compose(email: OutgoingEmail, alerts: list) -> EmailMultiAlternatives:
    context = context_for(email, alerts)
    template = TEMPLATES[email.kind]
    with timezone.override(preferences.zone(preferences.settings_for(email.user).time_zone)):
        text = render_to_string(f"notifications/email/{template}.txt", context)
        html = render_to_string(f"notifications/email/{template}.html", context)
    list_headers = {}
    if "unsubscribe_url" in context:
        list_headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        list_headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = NotificationMessage(
        subject=subject_for(email, alerts)[:300],
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.user.email],
        headers={"Auto-Submitted": "auto-generated"},
        list_headers=list_headers,
    )
    message.attach_alternative(html, "text/html")
    return message


def _is_permanent(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def work_of(organization_id: int | None = None) -> QuerySet[OutgoingEmail]:
    """The emails a sender woken for ``organization_id`` (None: any organization) looks at."""
    rows = OutgoingEmail.objects.all()
    return rows if organization_id is None else rows.filter(organization_id=organization_id)


def send_one(claimed: QuerySet[OutgoingEmail]) -> str:
    """Send one claimed email; returns its status afterwards."""
    email = claimed.select_related("user", "organization", "rule", "endpoint").first()
    if email is None:
        return "gone"
    user = email.user
    member = Membership.objects.filter(user=user, organization=email.organization).exists()
    if not member or not user.is_active or not user.email:
        work.complete(OutgoingEmail, [email], "The member left the organization or has no address.")
        return DeliveryStatus.CANCELED
    alerts = list(
        email.alerts.filter(organization=email.organization)
        .select_related("vehicle")
        .order_by("-fired_at", "-pk")
    )
    if email.kind != OutgoingEmail.Kind.ENDPOINT_DISABLED and not alerts:
        work.complete(OutgoingEmail, [email], "Nothing left to tell.")
        return DeliveryStatus.CANCELED
    now = timezone.now()
    try:
        message = compose(email, alerts)
        message.send(using="default")
    except Exception as exc:  # every backend error is either retried or reported on the row
        words = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning("Email %s not sent (attempt %s): %s", email.pk, email.attempts, words)
        with transaction.atomic():
            OutgoingEmail.objects.filter(pk=email.pk).update(last_attempt_at=now)
            if _is_permanent(exc):
                work.give_up(OutgoingEmail, [email], words)
                return DeliveryStatus.FAILED
            delivery.retry(OutgoingEmail, email, words, now)
        return DeliveryStatus.PENDING
    with transaction.atomic():
        OutgoingEmail.objects.filter(pk=email.pk).update(
            last_attempt_at=now, delivered_at=now, subject=str(message.subject)
        )
        work.complete(OutgoingEmail, [email])
    return DeliveryStatus.DELIVERED


def send_due(
    organization_id: int | None = None, *, budget_seconds: float, stop=work.stopping
) -> tuple[int, bool]:
    """Send due emails (of one organization, or any) one by one; as webhook_sender.send_due."""
    return delivery.send_due(
        work_of(organization_id), send_one, budget_seconds=budget_seconds, stop=stop
    )
