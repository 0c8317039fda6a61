"""A fleet manager's actions against the fault suite's stack, each in a process of its own
(``python -m tests.faults.driver ACTION ...`` with the stack's environment): the same service
calls the pages make, so the rows are written and the work queued exactly as in production.

    setup SLUG                     organization, owner, simulated HM app and its credential (JSON)
    onboard SLUG PREFIX COUNT      COUNT new vehicles, clearances requested (as "Add vehicles")
    import SLUG PREFIX COUNT       a CSV of COUNT new vehicles uploaded, previewed, confirmed (job id)
    defleet SLUG PREFIX COUNT      defleet the first COUNT vehicles of PREFIX
    carmaker-revoke SLUG PREFIX COUNT   the carmaker ends access to the first COUNT (simulator)
    reonboard SLUG PREFIX COUNT    request clearance again for the first COUNT
"""

from __future__ import annotations

import io
import json
import secrets
import sys
import time

import django


def vins(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:0{17 - len(prefix)}d}" for n in range(1, count + 1)]


def setup(slug: str) -> dict:
    from django.contrib.auth import get_user_model

    from clearance.models import Credential
    from clearance.services.credentials import set_secret
    from clearance.services.webhooks import webhook_url_for
    from organizations.models import Membership, Organization, Role
    from simulator import services as sim

    organization = Organization.objects.create(name=f"Fault suite {slug}", slug=slug)
    user = get_user_model().objects.create_user(
        username=f"owner-{slug}", email=f"{slug}@example.com", password=secrets.token_urlsafe(16)
    )
    Membership.objects.create(user=user, organization=organization, role=Role.OWNER)
    credential = Credential(
        organization=organization,
        name="Simulator",
        environment=Credential.Environment.SIMULATOR,
        auth_mode=Credential.AuthMode.CLIENT_SECRET,
    )
    webhook_url = webhook_url_for(credential)
    webhook_secret = secrets.token_urlsafe(24)
    app, app_secrets = sim.create_app(
        f"Fault suite {slug}", webhook_url=webhook_url, webhook_secret=webhook_secret
    )
    credential.client_id = app_secrets.client_id
    credential.app_id = app_secrets.app_id
    set_secret(credential, "client_secret", app_secrets.client_secret)
    set_secret(credential, "webhook_secret", webhook_secret)
    credential.save()
    return {
        "organization_id": organization.pk,
        "credential_id": credential.pk,
        "app_id": app.pk,
        "webhook_url": webhook_url,
        "webhook_secret": webhook_secret,
    }


def onboard(slug: str, prefix: str, count: int) -> dict:
    from clearance.models import Credential
    from clearance.services.onboarding import queue_clearance_requests
    from organizations.models import Organization
    from vehicles.models import Vehicle

    organization = Organization.objects.get(slug=slug)
    credential = Credential.objects.get(organization=organization)
    user = organization.memberships.first().user
    vehicles = Vehicle.objects.bulk_create(
        [
            Vehicle(organization=organization, vin=vin, brand="sandbox")
            for vin in vins(prefix, count)
        ]
    )
    result = queue_clearance_requests([v.pk for v in vehicles], credential=credential, actor=user)
    return {"queued": result.queued}


def import_csv(slug: str, prefix: str, count: int) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from clearance.models import Credential
    from imports.models import ImportJob
    from imports.services import import_job_confirm, import_job_create
    from organizations.models import Organization

    organization = Organization.objects.get(slug=slug)
    credential = Credential.objects.get(organization=organization)
    user = organization.memberships.first().user
    text = io.StringIO()
    text.write("vin,brand,nickname\n")
    for n, vin in enumerate(vins(prefix, count), 1):
        text.write(f"{vin},Sandbox,Van {n}\n")
    upload = SimpleUploadedFile(f"{prefix}.csv", text.getvalue().encode(), "text/csv")
    job = import_job_create(
        organization=organization, user=user, upload=upload, credential=credential
    )
    deadline = time.monotonic() + 240
    while True:
        job.refresh_from_db()
        if job.status == ImportJob.Status.PREVIEW:
            break
        if job.status not in {ImportJob.Status.UPLOADED, ImportJob.Status.VALIDATING}:
            raise SystemExit(f"import {job.pk} ended as {job.status}: {job.message}")
        if time.monotonic() > deadline:
            raise SystemExit(f"import {job.pk} was not validated within 240 s ({job.status})")
        time.sleep(0.5)
    import_job_confirm(job, user=user, accept_skipped=True)
    return {"job_id": job.pk, "total": job.total}


def _vehicles(slug: str, prefix: str, count: int) -> list:
    from vehicles.models import Vehicle

    return list(
        Vehicle.objects.filter(organization__slug=slug, vin__in=vins(prefix, count)).order_by("vin")
    )


def defleet(slug: str, prefix: str, count: int) -> dict:
    from clearance.services.defleet import queue_defleet
    from organizations.models import Organization

    user = Organization.objects.get(slug=slug).memberships.first().user
    return {"queued": queue_defleet(_vehicles(slug, prefix, count), actor=user)}


def carmaker_revoke(slug: str, prefix: str, count: int) -> dict:
    from clearance.models import Credential
    from simulator import services as sim
    from simulator.models import SimulatedApp

    credential = Credential.objects.get(organization__slug=slug)
    app = SimulatedApp.objects.get(client_id=credential.client_id)
    for vin in vins(prefix, count):
        sim.revoke_as_carmaker(app, vin)
    return {"revoked": count}


def reonboard(slug: str, prefix: str, count: int) -> dict:
    from clearance.services.onboarding import reonboard as reonboard_vehicles
    from organizations.models import Organization

    user = Organization.objects.get(slug=slug).memberships.first().user
    result = reonboard_vehicles([v.pk for v in _vehicles(slug, prefix, count)], actor=user)
    return {"queued": result.queued}


ACTIONS = {
    "onboard": onboard,
    "import": import_csv,
    "defleet": defleet,
    "carmaker-revoke": carmaker_revoke,
    "reonboard": reonboard,
}


def main(argv: list[str]) -> None:
    django.setup()
    action, *args = argv
    if action == "setup":
        result = setup(args[0])
    elif action in ACTIONS:
        result = ACTIONS[action](args[0], args[1], int(args[2]))
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
