"""A simulated HM application and the FleetPortal credential that talks to it."""

from __future__ import annotations

from typing import Any

from clearance.models import Credential
from organizations.models import Organization
from simulator import services as sim
from simulator.models import SimulatedApp
from simulator.services import AppSecrets
from tests.factories import CredentialFactory


def simulator_credential(
    organization: Organization,
    app_name: str,
    *,
    approval_delay_seconds: float = 5,
    **credential_fields: Any,
) -> tuple[Credential, SimulatedApp, AppSecrets]:
    """(credential, simulated app, the app's secrets): a client-secret credential of the
    simulator environment for a new simulated app; ``credential_fields`` override the rest."""
    app, secrets = sim.create_app(app_name, approval_delay_seconds=approval_delay_seconds)
    credential = CredentialFactory(
        organization=organization,
        environment=Credential.Environment.SIMULATOR,
        client_id=secrets.client_id,
        client_secret=secrets.client_secret,
        **credential_fields,
    )
    return credential, app, secrets
