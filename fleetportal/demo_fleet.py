"""The demo's fleet beyond the seed VINs: about forty vehicles of several brands, with plates,
nicknames and tags, whose clearances have a past (approved weeks ago, revoked by the carmaker,
canceled, ...), so `make run` shows a fleet in every clearance state from the first minute.

Plain data (no Django, no simulator): `manage.py demo` turns it into rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# How a demo vehicle's clearance came to be, as the simulated HM remembers it.
APPROVED = "approved"  # requested weeks ago, approved since
PENDING = "pending"  # requested yesterday, the owner has not confirmed yet
REVOKED = "revoked"  # approved, then the owner withdrew the consent in the brand's app
REVOKING = "revoking"  # defleeted a moment ago, HM is still ending the access
CANCELED = "canceled"  # requested, then canceled before approval
CANCELING = "canceling"  # the cancellation is under way at HM
ERROR = "error"  # the request never reached HM (FleetPortal recorded the failure)
NOT_REQUESTED = ""  # registered, clearance not requested yet

STORIES = (APPROVED, PENDING, REVOKED, REVOKING, CANCELED, CANCELING, ERROR, NOT_REQUESTED)


@dataclass(frozen=True)
class DemoVehicle:
    vin: str
    brand: str
    plate: str
    nickname: str
    story: str
    tags: dict[str, str] = field(default_factory=dict)


# World manufacturer identifiers, so the VINs look like the brand's.
_WMI = {
    "bmw": "WBA",
    "mercedes-benz": "WDD",
    "volkswagen": "WVW",
    "renault": "VF1",
    "ford": "WF0",
    "peugeot": "VF3",
    "volvo-cars": "YV1",
    "toyota": "JTD",
    "kia": "KNA",
    "tesla": "5YJ",
    "skoda": "TMB",
    "polestar": "LPS",
}

# (brand, plate, nickname, story, team, serial). The serial is the VIN's last digits, chosen so the
# simulator's story (deterministic per VIN: city, electric or not) fits the vehicle: Berlin,
# Munich and Hamburg plates drive there, and the electric models are electric.
_FLEET: tuple[tuple[str, str, str, str, str, int], ...] = (
    ("volkswagen", "M-FP 101", "Crafter 1", APPROVED, "Deliveries", 1501),
    ("volkswagen", "HH-FP 102", "Crafter 2", APPROVED, "Deliveries", 1202),
    ("mercedes-benz", "B-FP 103", "Sprinter 3", APPROVED, "Deliveries", 3),
    ("mercedes-benz", "M-FP 104", "eSprinter 4", APPROVED, "Deliveries", 8704),
    ("ford", "HH-FP 105", "Transit 5", APPROVED, "Deliveries", 305),
    ("ford", "B-FP 106", "E-Transit 6", APPROVED, "Deliveries", 306),
    ("renault", "M-FP 107", "Kangoo 7", APPROVED, "Service", 1707),
    ("renault", "HH-FP 108", "Zoe 8", APPROVED, "Service", 1508),
    ("peugeot", "B-FP 109", "Partner 9", APPROVED, "Service", 209),
    ("peugeot", "M-FP 110", "e-208 10", APPROVED, "Service", 110),
    ("toyota", "HH-FP 111", "Proace 11", APPROVED, "Service", 1511),
    ("toyota", "B-FP 112", "Corolla 12", APPROVED, "Sales", 912),
    ("skoda", "M-FP 113", "Octavia 13", APPROVED, "Sales", 1613),
    ("skoda", "HH-FP 114", "Enyaq 14", APPROVED, "Sales", 5314),
    ("bmw", "B-FP 115", "i4 15", APPROVED, "Management", 4115),
    ("bmw", "M-FP 116", "X1 16", APPROVED, "Sales", 416),
    ("kia", "HH-FP 117", "EV6 17", APPROVED, "Sales", 3517),
    ("kia", "B-FP 118", "Niro 18", APPROVED, "Service", 518),
    ("tesla", "M-FP 119", "Model Y 19", APPROVED, "Management", 4319),
    ("volvo-cars", "HH-FP 120", "XC40 20", APPROVED, "Sales", 3920),
    ("polestar", "B-FP 121", "Polestar 2 21", APPROVED, "Management", 2021),
    ("volkswagen", "M-FP 122", "ID. Buzz 22", APPROVED, "Service", 22),
    ("mercedes-benz", "HH-FP 123", "Vito 23", APPROVED, "Deliveries", 223),
    ("volkswagen", "B-FP 124", "Caddy 24", PENDING, "Service", 224),
    ("bmw", "M-FP 125", "iX3 25", REVOKED, "Management", 6025),
    ("renault", "HH-FP 126", "Master 26", REVOKED, "Deliveries", 2226),
    ("ford", "B-FP 127", "Ranger 27", REVOKING, "Service", 827),
    ("peugeot", "M-FP 128", "Expert 28", CANCELED, "Deliveries", 28),
    ("mercedes-benz", "HH-FP 129", "Citan 29", CANCELING, "Service", 1029),
    ("toyota", "B-FP 130", "bZ4X 30", ERROR, "Sales", 530),
    ("skoda", "M-FP 131", "Superb 31", NOT_REQUESTED, "Management", 631),
    ("kia", "HH-FP 132", "PV5 32", NOT_REQUESTED, "Deliveries", 1032),
)

DEMO_FLEET: tuple[DemoVehicle, ...] = tuple(
    DemoVehicle(
        vin=f"{_WMI[brand]}FPDEMO{serial:08d}",
        brand=brand,
        plate=plate,
        nickname=nickname,
        story=story,
        tags={"team": team, "cost_centre": f"CC-{400 + number % 4}"},
    )
    for number, (brand, plate, nickname, story, team, serial) in enumerate(_FLEET, start=1)
)

# The error a request that never reached HM leaves on the demo's "error" vehicle.
DEMO_ERROR_WORDS = "High Mobility could not be reached (connection timed out); request it again."
