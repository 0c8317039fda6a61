"""Demo data for `make run`: idempotent, safe to run on every start."""

import os
import secrets
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from clearance import changelog, state
from clearance.hm import FleetVehicle
from clearance.models import Clearance, ClearanceEvent, ClearanceStatus, Credential
from clearance.services.credentials import set_secret
from clearance.services.onboarding import queue_clearance_requests
from clearance.services.webhooks import webhook_url_for
from fleetportal import demo_fleet
from notifications.models import AlertRule, EmailMode, RuleKind
from organizations.models import Membership, Organization, Role
from simulator import services as sim
from simulator.behaviour import CARMAKER_REVOKED
from simulator.models import SimulatedApp
from simulator.vehicle_data import profile as vehicle_profile
from simulator.vehicle_data import vehicle_state
from telemetry.models import LatestTelemetry, Place, TelemetrySnapshot
from telemetry.parse import parse_rest
from telemetry.services import build_snapshot, rebuild_latest
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


# The demo's approved vehicles come with this much history (one snapshot every HISTORY_STEP), so
# charts, trips and the map have something to show from the first minute.
HISTORY_DAYS = 2
HISTORY_STEP = timedelta(minutes=15)
S = ClearanceStatus


def _story_facts(story: str, now):
    """(requested_at, approval delay, deleted_at, delete action, removal delay) of a story."""
    hour, day, soon = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)
    return {
        demo_fleet.APPROVED: (now - 30 * day, 2 * hour, None, "", hour),
        demo_fleet.PENDING: (now - 20 * hour, 10 * day, None, "", hour),
        demo_fleet.REVOKED: (now - 60 * day, 3 * hour, now - 2 * day, CARMAKER_REVOKED, hour),
        demo_fleet.REVOKING: (now - 40 * day, hour, now - soon, "revoking", 12 * hour),
        demo_fleet.CANCELED: (now - 4 * day, 10 * day, now - 2 * day, "canceling", 5 * soon),
        demo_fleet.CANCELING: (now - 3 * day, 10 * day, now - soon, "canceling", 12 * hour),
    }[story]


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
        stories = self._fleet_with_history(organization, credential, app)
        snapshots = self._telemetry_history(organization)
        places = self._places(organization)
        return [
            f"  Simulator credential {credential.name!r} {created} "
            f"(simulated HM app {app.name!r}; webhooks to {webhook_url})",
            f"  Sandbox vehicles: {len(vehicles)} ({queued} newly queued for clearance)",
            f"  Fleet vehicles: {len(demo_fleet.DEMO_FLEET)} "
            f"({', '.join(f'{n} {s or "not requested"}' for s, n in stories.items())})",
            f"  Telemetry history: {snapshots} snapshots added",
            f"  Places: {places}",
        ]

    def _places(self, organization) -> int:
        """A depot in each city where a demo vehicle is parked now, only while the organization
        has no places (a deleted one stays gone)."""
        if not Place.objects.filter(organization=organization).exists():
            latest = (
                LatestTelemetry.objects.filter(
                    vehicle__organization=organization, latitude__isnull=False
                )
                .select_related("vehicle")
                .order_by("vehicle__vin")
            )
            cities: set[str] = set()
            for row in latest:
                city = vehicle_profile(row.vehicle.vin).city
                if city in cities or row.latitude is None or row.longitude is None:
                    continue
                cities.add(city)
                Place.objects.create(
                    organization=organization,
                    name=f"Depot {city}",
                    latitude=round(row.latitude, 5),
                    longitude=round(row.longitude, 5),
                    radius_m=500,
                )
        return Place.objects.filter(organization=organization).count()

    def _fleet_with_history(self, organization, credential, app) -> Counter:
        """The fleet of demo_fleet.py, each clearance where its story has led by now.

        The simulated HM records each round as begun in the past; our side learns it the way a
        sync does (the changelog replayed through the state machine), so events and alerts are
        the real ones. A vehicle that already has a clearance is left alone.
        """
        now = timezone.now()
        stories: Counter = Counter()
        for item in demo_fleet.DEMO_FLEET:
            stories[item.story] += 1
            vehicle, _ = Vehicle.objects.get_or_create(
                organization=organization,
                vin=item.vin,
                defaults={
                    "brand": item.brand,
                    "license_plate": item.plate,
                    "nickname": item.nickname,
                    "tags": item.tags,
                },
            )
            if not item.story or Clearance.objects.filter(vehicle=vehicle).exists():
                continue
            if item.story == demo_fleet.ERROR:
                row = self._queued(vehicle, credential, now - timedelta(hours=5))
                refusal = state.Change(
                    status=S.ERROR,
                    source=ClearanceEvent.Source.API,
                    learned_at=now - timedelta(hours=5),
                    detail=demo_fleet.DEMO_ERROR_WORDS,
                    description=demo_fleet.DEMO_ERROR_WORDS,
                )
                state.apply_changes([(row, refusal)], now=now)
                continue
            requested_at, delay, deleted_at, action, removal = _story_facts(item.story, now)
            sim_row = sim.plant_clearance(
                app,
                item.vin,
                item.brand,
                requested_at=requested_at,
                approval_delay=delay,
                deleted_at=deleted_at,
                delete_action=action,
                removal_delay=removal,
                tags=item.tags,
            )
            row = self._queued(vehicle, credential, requested_at)
            sent = state.Change(
                status=S.PENDING,
                source=ClearanceEvent.Source.API,
                at=requested_at,
                learned_at=requested_at,
                detail="Sent to High Mobility.",
            )
            state.apply_changes([(row, sent)], now=requested_at)
            listed = FleetVehicle.from_json(sim.clearance_json(sim_row, now))
            changes = changelog.changes_from_hm(row, listed, learned_at=now)
            state.apply_changes([(row, change) for change in changes], now=now)
        return stories

    def _queued(self, vehicle, credential, at) -> Clearance:
        row = Clearance.objects.create(
            vehicle=vehicle,
            credential=credential,
            status=S.QUEUED,
            status_changed_at=at,
            status_known_at=at,
            requested_at=at,
        )
        ClearanceEvent.objects.create(
            clearance=row,
            from_status="",
            to_status=S.QUEUED,
            at=at,
            source=ClearanceEvent.Source.SYSTEM,
            detail="Clearance requested.",
        )
        return row

    def _telemetry_history(self, organization) -> int:
        """HISTORY_DAYS of snapshots for approved demo vehicles that have none yet, as the
        simulator's story tells them (the same story its REST endpoint and stream tell)."""
        now = timezone.now()
        vins = {item.vin for item in demo_fleet.DEMO_FLEET if item.story == demo_fleet.APPROVED}
        vehicles = Vehicle.objects.filter(
            organization=organization, vin__in=vins, clearance__status=S.APPROVED
        ).exclude(telemetry__isnull=False)
        steps = int(timedelta(days=HISTORY_DAYS) / HISTORY_STEP)
        added = 0
        for vehicle in vehicles:
            rows = []
            for step in range(steps, -1, -1):  # up to now
                at = now - step * HISTORY_STEP
                parsed = parse_rest(vehicle_state(vehicle.vin, at, brand=vehicle.brand))
                rows.append(
                    build_snapshot(
                        vehicle, parsed, source=TelemetrySnapshot.Source.PULL, received_at=at
                    )
                )
            TelemetrySnapshot.objects.bulk_create(rows, batch_size=500)
            newest = TelemetrySnapshot.objects.filter(vehicle=vehicle).aggregate(
                newest=Max("captured_at")
            )["newest"]
            Vehicle.objects.filter(pk=vehicle.pk).update(last_seen_at=newest)
            rebuild_latest([vehicle.pk])
            added += len(rows)
        return added
