"""Export -> import round-trips every vehicle unchanged: the CSV export writes each field as the
one rule set of vehicles/validation.py reads it back (bare tags, odometer, formula-looking text)."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imports import exports
from imports.parse import open_fleet_csv
from imports.rows import RowValidator
from organizations.models import Organization
from tests.imports.test_services import run, upload
from vehicles import validation
from vehicles.models import Vehicle

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
# Text a fleet manager can type: any letter, digit, punctuation, symbol or space (no control
# characters, which the import refuses as damaged data), trimmed as every form trims it.
typed = st.characters(categories=("L", "N", "P", "S", "Zs"))


def text(max_size: int, *, exclude: str = "") -> st.SearchStrategy[str]:
    alphabet = typed.filter(lambda c: c not in exclude) if exclude else typed
    return st.text(alphabet, max_size=max_size).map(str.strip).filter(lambda t: len(t) <= max_size)


tag_keys = text(validation.MAX_TAG_KEY, exclude=",;=").filter(bool)
tag_values = text(validation.MAX_TAG_VALUE, exclude=",;")
vehicles = st.fixed_dictionaries(
    {
        "vin": st.text(VIN_ALPHABET, min_size=17, max_size=17),
        "brand": st.sampled_from(validation.FLEET_BRANDS),
        "license_plate": text(validation.MAX_LICENSE_PLATE),
        "nickname": text(validation.MAX_NICKNAME),
        "tags": st.dictionaries(tag_keys, tag_values, max_size=validation.MAX_TAGS),
        "odometer_km": st.none() | st.integers(0, validation.MAX_ODOMETER_KM),
    }
)
FIELDS = ("vin", "brand", "license_plate", "nickname", "tags", "odometer_km")


def exported(queryset) -> bytes:
    return "".join(exports.csv_lines(exports.vehicle_rows(queryset))).encode()


def read_back(data: bytes):
    csv_file = open_fleet_csv(io.BytesIO(data))
    validator = RowValidator(csv_file.layout)
    return [validator.validate(raw) for raw in csv_file.rows()]


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(vehicles, min_size=1, max_size=5, unique_by=lambda v: v["vin"]))
def test_export_then_import_reads_every_vehicle_back_unchanged(organization, drafts):
    Vehicle.objects.filter(organization=organization).delete()
    Vehicle.objects.bulk_create(Vehicle(organization=organization, **d) for d in drafts)
    rows = read_back(exported(Vehicle.objects.filter(organization=organization).order_by("vin")))
    assert [issue for row in rows for issue in row.errors] == []
    got = [{name: getattr(row, name) for name in FIELDS} for row in rows]
    assert got == sorted(drafts, key=lambda d: d["vin"])


def test_export_then_import_into_another_fleet_creates_the_same_vehicles(
    organization, manager_user
):
    drafts = [
        {
            "vin": "WBA00000000000001",
            "brand": "bmw",
            "license_plate": "=B-X 1",
            "nickname": "'=not a formula, 't Hoff",
            "tags": {"vans": "", "depot": "berlin"},
            "odometer_km": 9_999_999,
        },
        {
            "vin": "1HMD3W5DA8C7Y5DNA",
            "brand": "sandbox",
            "license_plate": "",
            "nickname": "",
            "tags": {},
            "odometer_km": None,
        },
    ]
    other = Organization.objects.create(name="Beta", slug="beta")
    Vehicle.objects.bulk_create(Vehicle(organization=other, **d) for d in drafts)
    data = exported(Vehicle.objects.filter(organization=other).order_by("vin"))
    job = run(upload(organization, manager_user, data), manager_user)
    assert job.errors == 0 and job.warnings == 1  # the plate that looks like a formula
    mine = Vehicle.objects.filter(organization=organization).order_by("vin").values(*FIELDS)
    assert list(mine) == sorted(drafts, key=lambda d: d["vin"])
