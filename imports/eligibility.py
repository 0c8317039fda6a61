"""The optional eligibility check of an upload: ask HM whether the first new VINs can be
cleared (one call per VIN, at most ``IMPORT_ELIGIBILITY_CHECK_LIMIT``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from clearance.clients import hm_client_for
from clearance.hm.types import ELIGIBILITY_BRANDS
from clearance.models import Credential
from imports.files import open_job_file
from imports.models import ImportJob
from imports.planning import open_plan
from imports.rows import VehicleRow


def job_credential(job: ImportJob) -> Credential | None:
    if not job.credential_public_id:
        return None
    return Credential.objects.filter(
        organization_id=job.organization_id, public_id=job.credential_public_id
    ).first()


def check_new_vins_eligibility(job: ImportJob) -> dict[str, Any]:
    """Ask HM whether the first new VINs are eligible (one call per VIN, capped by a setting)."""
    limit = settings.IMPORT_ELIGIBILITY_CHECK_LIMIT
    credential = job_credential(job)
    result: dict[str, Any] = {
        "limit": limit,
        "checked": 0,
        "eligible": 0,
        "not_eligible": [],
        "failed": 0,
    }
    if credential is None:
        result["message"] = "No HM credential was chosen, so eligibility was not checked."
        return result
    try:
        client = hm_client_for(credential)
    except Exception as exc:
        result["message"] = f"The eligibility check could not start: {exc}"
        return result
    with open_job_file(job) as stream:
        _, batches = open_plan(stream, job.organization, update_existing=job.update_existing)
        for batch in batches:
            for row in batch.new:
                if result["checked"] >= limit:
                    return result
                if row.brand not in ELIGIBILITY_BRANDS:
                    continue
                _check_one(client, row, result)
    return result


def _check_one(client: Any, row: VehicleRow, result: dict[str, Any]) -> None:
    result["checked"] += 1
    try:
        answer = client.check_eligibility(row.vin, row.brand)
    except Exception as exc:
        result["failed"] += 1
        if len(result["not_eligible"]) < 20:
            result["not_eligible"].append(
                {"row": row.row, "vin": row.vin, "reason": str(exc)[:200]}
            )
        return
    if answer.eligible:
        result["eligible"] += 1
    elif len(result["not_eligible"]) < 20:
        result["not_eligible"].append({"row": row.row, "vin": row.vin, "reason": "Not eligible"})
