"""Demo data for `make run`: idempotent, safe to run on every start."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from clearance.models import Clearance, Credential
from clearance.services.credentials import set_secret
from clearance.services.onboarding import queue_clearance_requests
from clearance.services.webhooks import webhook_url_for
from notifications.models import AlertRule, EmailMode, RuleKind
from organizations.models import Membership, Organization, Role
from simulator import services as sim
from simulator.models import SimulatedApp
from vehicles.models import Vehicle

DEMO_ORG_NAME = "Demo Fleet"
DEMO_ORG_SLUG = "demo-fleet"
DEMO_USERNAME = "demo"
DEMO_CREDENTIAL_NAME = "Simulator"
DEMO_APP_NAME = "FleetPortal demo app"
# The HM sandbox's documented VINs (simulated the same way) and a few ordinary ones.
SEED_VEHICLES = [
    ("2HM00000000000001", 2050, "Needs odometer 2050 km"),
    ("2HM00000000000002", None, "Stays pending"),
    ("2HM00000000000003", None, "Rejected after 3 h"),
]
ORDINARY_VINS = [f"2HMFLEET{n:09d}" for n in range(1, 6)]
# Alert rules of a fresh demo organization: (name, kind, threshold, email).
DEMO_RULES = [
    ("Clearance rejected", RuleKind.CLEARANCE_REJECTED, None, EmailMode.IMMEDIATE),
    ("Revoked by the carmaker", RuleKind.CLEARANCE_REVOKED, None, EmailMode.IMMEDIATE),
    ("Pending over 10 days", RuleKind.PENDING_TOO_LONG, 10, EmailMode.DIGEST),
    ("Battery below 25 %", RuleKind.BATTERY_LOW, 25, EmailMode.DIGEST),
    ("Fuel below 25 %", RuleKind.FUEL_LOW, 25, EmailMode.DIGEST),
]


def _demo_password() -> str:
    """The same password on every run: from DEMO_PASSWORD, else generated once and kept under var/."""
    if os.environ.get("DEMO_PASSWORD"):
        return os.environ["DEMO_PASSWORD"]
    path = settings.VAR_DIR / "demo-password.txt"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


class Command(BaseCommand):
    help = "Create the demo organization and its owner (idempotent) and print the login."

    def handle(self, *args, **options):
        password = _demo_password()
        with transaction.atomic():
            organization, _ = Organization.objects.get_or_create(
                slug=DEMO_ORG_SLUG, defaults={"name": DEMO_ORG_NAME}
            )
            user, created = get_user_model().objects.get_or_create(
                username=DEMO_USERNAME,
                defaults={"email": "demo@example.com", "is_staff": True, "is_superuser": True},
            )
            if created or not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
            Membership.objects.update_or_create(
                user=user, organization=organization, defaults={"role": Role.OWNER}
            )
            rules = self._alert_rules(organization, user)
            simulator_lines = self._simulator(organization, user)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  Organization: {organization.name}")
        self.stdout.write(f"  Alert rules: {rules}")
        for line in simulator_lines:
            self.stdout.write(line)
        self.stdout.write(f"  Log in at {settings.SITE_URL}/login/ with")
        self.stdout.write(f"    username: {DEMO_USERNAME}")
        self.stdout.write(f"    password: {password}")

    def _alert_rules(self, organization, user) -> int:
        """A few alert rules, only while the organization has none (a deleted one stays gone)."""
        if not AlertRule.objects.filter(organization=organization).exists():
            for name, kind, threshold, email in DEMO_RULES:
                AlertRule.objects.create(
                    organization=organization,
                    name=name,
                    kind=kind,
                    threshold=threshold,
                    email_default=email,
                    created_by=user,
                )
        return AlertRule.objects.filter(organization=organization).count()

    def _simulator(self, organization, user) -> list[str]:
        """A simulated HM app, a simulator credential wired to it, sandbox vehicles queued."""
        if not settings.SIMULATOR_ENABLED:
            return ["  Simulator disabled (SIMULATOR_ENABLED=0): no demo credential or vehicles."]
        credential = Credential.objects.filter(
            organization=organization, name=DEMO_CREDENTIAL_NAME
        ).first()
        if credential is None:
            credential = Credential(
                organization=organization,
                name=DEMO_CREDENTIAL_NAME,
                environment=Credential.Environment.SIMULATOR,
                auth_mode=Credential.AuthMode.CLIENT_SECRET,
            )
        webhook_url = webhook_url_for(credential)
        app = SimulatedApp.objects.filter(client_id=credential.client_id).first()
        if credential.client_id == "" or app is None:
            webhook_secret = secrets.token_urlsafe(24)
            app, app_secrets = sim.create_app(
                DEMO_APP_NAME, webhook_url=webhook_url, webhook_secret=webhook_secret
            )
            credential.environment = Credential.Environment.SIMULATOR
            credential.auth_mode = Credential.AuthMode.CLIENT_SECRET
            credential.client_id = app_secrets.client_id
            credential.app_id = app_secrets.app_id
            set_secret(credential, "client_secret", app_secrets.client_secret)
            set_secret(credential, "webhook_secret", webhook_secret)
            credential.save()
            created = "created"
        else:
            created = "kept"
            if app.webhook_url != webhook_url or app.webhook_secret != credential.webhook_secret:
                # SITE_URL changed (or the secret was replaced): point the app at us again.
                if not credential.webhook_secret:
                    set_secret(credential, "webhook_secret", secrets.token_urlsafe(24))
                    credential.save()
                sim.set_webhook(app, webhook_url, credential.webhook_secret)

        vehicles = []
        for vin, odometer, nickname in SEED_VEHICLES:
            vehicle, _ = Vehicle.objects.get_or_create(
                organization=organization,
                vin=vin,
                defaults={"brand": "sandbox", "odometer_km": odometer, "nickname": nickname},
            )
            vehicles.append(vehicle)
        for vin in ORDINARY_VINS:
            vehicle, _ = Vehicle.objects.get_or_create(
                organization=organization, vin=vin, defaults={"brand": "sandbox"}
            )
            vehicles.append(vehicle)
        # Only vehicles that never had a clearance: re-running the demo re-requests nothing.
        known = set(
            Clearance.objects.filter(vehicle__in=vehicles).values_list("vehicle_id", flat=True)
        )
        fresh = [v.pk for v in vehicles if v.pk not in known]
        queued = 0
        if fresh:
            queued = queue_clearance_requests(fresh, credential=credential, actor=user).queued
        return [
            f"  Simulator credential {credential.name!r} {created} "
            f"(simulated HM app {app.name!r}; webhooks to {webhook_url})",
            f"  Sandbox vehicles: {len(vehicles)} ({queued} newly queued for clearance)",
        ]
